import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ModelError } from '../../../src/model/errors.js';
import { allocateOptimizedArrays } from '../../../src/model/training/adamw.js';
import { loadCheckpoint, saveCheckpoint } from '../../../src/model/training/checkpoint.js';
import type { TrainingState } from '../../../src/model/training/step-runner.js';
import type { TrainableParameter } from '../../../src/model/training/train-graph.js';

const PARAMETERS: TrainableParameter[] = [
  { name: 'w', dims: [2, 3], decay: true },
  { name: 'b', dims: [3], decay: false },
];

/** A state in the optimizer's memory, as the step runner makes them, its values from `seed`. */
function stateOf(parameters: readonly TrainableParameter[], seed: number, step: number): TrainingState {
  const state = { ...allocateOptimizedArrays(parameters.map(({ name, dims }) => ({ name, length: dims.reduce((a, b) => a * b, 1) }))), step };
  [state.parameters, state.moments, state.variances].forEach((tensors, kind) => {
    for (const data of tensors.values()) data.forEach((_, i) => (data[i] = seed + kind + i / 8));
  });
  return state;
}

const values = (state: TrainingState) => [state.parameters, state.moments, state.variances].map((tensors) => [...tensors.values()].map((data) => [...data]));

describe('checkpoint', () => {
  const root = mkdtemp(join(tmpdir(), 'tunebot-checkpoint-'));
  after(async () => rm(await root, { recursive: true, force: true }));
  const progress = { runKey: 'run-a', epoch: 1, stepInEpoch: 2, history: { losses: [3, 2] } };

  it('restores parameters, moments and the step into the state it is given', async () => {
    const dir = join(await root, 'whole');
    const saved = stateOf(PARAMETERS, 1, 7);
    await saveCheckpoint(dir, PARAMETERS, saved, progress);
    const restored = stateOf(PARAMETERS, 50, 0);
    const arrays = [...restored.parameters.values()];
    assert.deepEqual(await loadCheckpoint(dir, PARAMETERS, 'run-a', restored), { ...progress, step: 7 });
    assert.deepEqual(values(restored), values(saved));
    assert.equal(restored.step, 7);
    assert.ok(arrays.every((data, i) => data === [...restored.parameters.values()][i]), 'into the same arrays');
  });

  it("another run's checkpoint, or none, leaves the state as it was", async () => {
    const dir = join(await root, 'other');
    await saveCheckpoint(dir, PARAMETERS, stateOf(PARAMETERS, 1, 7), progress);
    const fresh = stateOf(PARAMETERS, 50, 0);
    const before = values(fresh);
    assert.equal(await loadCheckpoint(dir, PARAMETERS, 'run-b', fresh), null);
    assert.equal(await loadCheckpoint(join(await root, 'missing'), PARAMETERS, 'run-a', fresh), null);
    assert.deepEqual(values(fresh), before);
    assert.equal(fresh.step, 0);
  });

  it('a checkpoint whose tensors do not fit the parameters is refused and leaves the state as it was', async () => {
    const dir = join(await root, 'mismatch');
    const shorter: TrainableParameter[] = [PARAMETERS[0], { name: 'b', dims: [2], decay: false }];
    await saveCheckpoint(dir, shorter, stateOf(shorter, 1, 7), progress);
    const fresh = stateOf(PARAMETERS, 50, 0);
    const before = values(fresh);
    await assert.rejects(
      loadCheckpoint(dir, PARAMETERS, 'run-a', fresh),
      (error) => error instanceof ModelError && error.code === 'MODEL_CORRUPT' && /has 2 values for param\.b; delete the folder to start over/.test(error.message),
    );
    assert.deepEqual(values(fresh), before, 'w was not restored alone');
    assert.equal(fresh.step, 0);
  });
});
