import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../errors.js';
import { readSafetensors, writeSafetensors } from '../files/safetensors.js';
import type { WeightMap } from '../tensor.js';
import type { TrainableParameter } from './train-graph.js';
import type { TrainingState } from './step-runner.js';

/**
 * A training checkpoint: the state (parameters, AdamW moments, step) in state.safetensors and
 * the loop's position and history in progress.json. Written to a temporary folder and swapped
 * in, so a crash while saving leaves the previous checkpoint whole.
 */
export interface CheckpointProgress<History> {
  /** Identifies the run (base model, data, settings): a checkpoint of another run is not resumed. */
  readonly runKey: string;
  readonly epoch: number;
  /** Optimizer steps already taken inside `epoch`. */
  readonly stepInEpoch: number;
  readonly history: History;
}

const STATE_FILE = 'state.safetensors';
const PROGRESS_FILE = 'progress.json';

export async function saveCheckpoint<History>(
  dir: string,
  parameters: readonly TrainableParameter[],
  state: TrainingState,
  progress: CheckpointProgress<History>,
): Promise<void> {
  const tensors: WeightMap = new Map();
  for (const { name, dims } of parameters) {
    tensors.set(`param.${name}`, { dims, data: state.parameters.get(name) as Float32Array });
    tensors.set(`m.${name}`, { dims, data: state.moments.get(name) as Float32Array });
    tensors.set(`v.${name}`, { dims, data: state.variances.get(name) as Float32Array });
  }
  const temp = `${dir}.tmp-${randomBytes(6).toString('hex')}`;
  // A fixed name: a crash between the two renames leaves it for loadCheckpoint to find.
  const previous = `${dir}.old`;
  try {
    await mkdir(temp, { recursive: true });
    await writeSafetensors(join(temp, STATE_FILE), tensors, { step: String(state.step) });
    await writeFile(join(temp, PROGRESS_FILE), JSON.stringify({ ...progress, step: state.step }));
    const exists = await stat(dir).then(() => true, () => false);
    await rm(previous, { recursive: true, force: true });
    if (exists) await rename(dir, previous);
    await rename(temp, dir);
    if (exists) await rm(previous, { recursive: true, force: true });
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Restores the checkpoint in `dir` into `state` (parameters, moments, step) if there is one
 * for this run, and returns its progress; null, with `state` untouched, when there is none or
 * it is another run's.
 */
export async function loadCheckpoint<History>(
  dir: string,
  parameters: readonly TrainableParameter[],
  runKey: string,
  state: TrainingState,
): Promise<CheckpointProgress<History> | null> {
  let text: string;
  try {
    text = await readFile(join(dir, PROGRESS_FILE), 'utf8');
  } catch {
    // A crash while swapping a new checkpoint in leaves the previous one under `.old`.
    const previous = `${dir}.old`;
    if (await stat(previous).then(() => true, () => false)) {
      await rename(previous, dir);
      return loadCheckpoint(dir, parameters, runKey, state);
    }
    return null;
  }
  let progress: CheckpointProgress<History> & { step: number };
  try {
    progress = JSON.parse(text);
  } catch (error) {
    throw new ModelError('MODEL_CORRUPT', `checkpoint ${dir}/${PROGRESS_FILE} is not valid JSON; delete the folder to start over`, { cause: error });
  }
  if (progress.runKey !== runKey) return null;
  const { tensors } = await readSafetensors(join(dir, STATE_FILE));
  // Every tensor is checked before any is copied, so a damaged checkpoint leaves the state as it was.
  const copies: [Float32Array, Float32Array][] = [];
  for (const { name } of parameters) {
    for (const [key, into] of [[`param.${name}`, state.parameters], [`m.${name}`, state.moments], [`v.${name}`, state.variances]] as const) {
      const tensor = tensors.get(key);
      const target = into.get(name) as Float32Array;
      if (!tensor || tensor.data.length !== target.length) {
        throw new ModelError('MODEL_CORRUPT', `checkpoint ${dir} ${tensor ? `has ${tensor.data.length} values for` : 'lacks'} ${key}; delete the folder to start over`);
      }
      copies.push([target, tensor.data]);
    }
  }
  for (const [target, data] of copies) target.set(data);
  state.step = progress.step;
  return progress;
}
