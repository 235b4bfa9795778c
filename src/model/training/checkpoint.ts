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

/** The checkpoint in `dir` if there is one for this run; null when there is none or it is another run's. */
export async function loadCheckpoint<History>(
  dir: string,
  parameters: readonly TrainableParameter[],
  runKey: string,
): Promise<{ state: TrainingState; progress: CheckpointProgress<History> } | null> {
  let text: string;
  try {
    text = await readFile(join(dir, PROGRESS_FILE), 'utf8');
  } catch {
    // A crash while swapping a new checkpoint in leaves the previous one under `.old`.
    const previous = `${dir}.old`;
    if (await stat(previous).then(() => true, () => false)) {
      await rename(previous, dir);
      return loadCheckpoint(dir, parameters, runKey);
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
  const take = (key: string): Float32Array => {
    const tensor = tensors.get(key);
    if (!tensor) throw new ModelError('MODEL_CORRUPT', `checkpoint ${dir} lacks ${key}; delete the folder to start over`);
    return Float32Array.from(tensor.data);
  };
  const state: TrainingState = {
    parameters: new Map(parameters.map(({ name }) => [name, take(`param.${name}`)])),
    moments: new Map(parameters.map(({ name }) => [name, take(`m.${name}`)])),
    variances: new Map(parameters.map(({ name }) => [name, take(`v.${name}`)])),
    step: progress.step,
  };
  return { state, progress };
}
