import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { type Gpt2Config, configJson, validateConfig } from '../config.js';
import { ModelError } from '../errors.js';
import { readSafetensors, writeSafetensors } from './safetensors.js';
import type { WeightMap } from '../tensor.js';
import { canonicalWeightNames, checkWeights } from './weights.js';

export interface GenerationConfig {
  bos_token_id: number;
  eos_token_id: number;
  max_length?: number;
  do_sample?: boolean;
  [k: string]: unknown;
}

export interface ModelFiles {
  config: Gpt2Config;
  weights: WeightMap;
  generationConfig: GenerationConfig;
  training?: unknown;
}

const CONFIG_FILE = 'config.json';
const GENERATION_CONFIG_FILE = 'generation_config.json';
const WEIGHTS_FILE = 'model.safetensors';
const TRAINING_FILE = 'training.json';
const SHARD_INDEX_FILE = 'model.safetensors.index.json';
const OWN_FILES = [CONFIG_FILE, GENERATION_CONFIG_FILE, WEIGHTS_FILE, TRAINING_FILE];
const TRANSFORMERS_VERSION = '4.46.0';

export function defaultGenerationConfig(config: Gpt2Config): GenerationConfig {
  return { bos_token_id: config.bos_token_id, eos_token_id: config.eos_token_id };
}

/**
 * Writes dir atomically: everything goes to a sibling temp folder (dir + '.tmp-<random>') then
 * rename; an existing dir is an error unless overwrite; on any failure the temp folder is removed
 * and an existing dir is untouched. extraFiles: relative path -> content (e.g. 'onnx/model.onnx',
 * 'tokenizer.json'), written inside the temp folder too.
 */
export async function writeModelDir(
  dir: string,
  files: ModelFiles,
  extraFiles: Map<string, Uint8Array | string> = new Map(),
  options: { overwrite?: boolean } = {},
): Promise<void> {
  checkWeights(files.config, files.weights, 'the weights to write');
  for (const relativePath of extraFiles.keys()) checkExtraPath(relativePath);
  const target = resolve(dir);
  const existing = await pathKind(target);
  if (existing !== 'missing' && !options.overwrite) {
    throw new ModelError('OPTIONS_INVALID', `${target} already exists; choose another folder or pass overwrite`);
  }
  if (existing === 'file') throw new ModelError('OPTIONS_INVALID', `${target} is a file, not a model folder`);

  await mkdir(dirname(target), { recursive: true });
  const temp = `${target}.tmp-${randomBytes(6).toString('hex')}`;
  await mkdir(temp);
  try {
    await writeJson(join(temp, CONFIG_FILE), configJson(files.config));
    await writeJson(join(temp, GENERATION_CONFIG_FILE), {
      ...files.generationConfig,
      transformers_version: files.generationConfig.transformers_version ?? TRANSFORMERS_VERSION,
    });
    await writeSafetensors(join(temp, WEIGHTS_FILE), files.weights, { format: 'pt' });
    if (files.training !== undefined) await writeJson(join(temp, TRAINING_FILE), files.training);
    for (const [relativePath, content] of extraFiles) {
      const path = join(temp, relativePath);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content, { flag: 'wx' });
    }
    await moveIntoPlace(temp, target, existing === 'dir');
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

/** A directory cannot be renamed over a non-empty one, so the old folder steps aside first and comes back if the swap fails. */
async function moveIntoPlace(temp: string, target: string, replacing: boolean): Promise<void> {
  if (!replacing) {
    await rename(temp, target);
    return;
  }
  const old = `${target}.old-${randomBytes(6).toString('hex')}`;
  await rename(target, old);
  try {
    await rename(temp, target);
  } catch (error) {
    await rename(old, target);
    throw error;
  }
  await rm(old, { recursive: true, force: true });
}

function checkExtraPath(relativePath: string): void {
  const normalized = normalize(relativePath);
  if (isAbsolute(relativePath) || normalized === '.' || normalized === '..' || normalized.startsWith(`..${sep}`)) {
    throw new ModelError('OPTIONS_INVALID', `extra file path "${relativePath}" must be relative and stay inside the model folder`);
  }
  if (OWN_FILES.includes(normalized)) {
    throw new ModelError('OPTIONS_INVALID', `extra file "${relativePath}" would replace a file the model folder writes itself`);
  }
}

/**
 * Reads config.json (validateConfig), model.safetensors (canonicalWeightNames then checkWeights),
 * generation_config.json (default from config when missing), training.json if present.
 */
export async function readModelDir(dir: string): Promise<ModelFiles> {
  await requireFolder(dir, `no model at ${dir}; create one with \`tunebot model init --preset tiny --out ${dir}\``);
  const config = await readConfig(dir);
  const weightsPath = join(dir, WEIGHTS_FILE);
  if ((await pathKind(weightsPath)) === 'missing') {
    throw new ModelError('MODEL_NOT_FOUND', `${weightsPath} is missing; the model folder has no weights`);
  }
  const weights = canonicalWeightNames((await readSafetensors(weightsPath)).tensors);
  checkWeights(config, weights, weightsPath);
  const files: ModelFiles = { config, weights, generationConfig: await readGenerationConfig(dir, config) };
  const trainingPath = join(dir, TRAINING_FILE);
  if ((await pathKind(trainingPath)) !== 'missing') files.training = await readJson(trainingPath, 'MODEL_CORRUPT');
  return files;
}

/**
 * Import a Hugging Face GPT-2 checkpoint folder as saved by GPT2LMHeadModel (model.safetensors, or
 * shards listed in model.safetensors.index.json, + config.json; names may carry "transformer." and
 * there may be lm_head.weight and attn.bias buffers) -> ModelFiles (validated).
 */
export async function readHfCheckpoint(dir: string): Promise<ModelFiles> {
  await requireFolder(dir, `no Hugging Face checkpoint at ${dir}`);
  const config = await readConfig(dir);
  const weightsPath = join(dir, WEIGHTS_FILE);
  const indexPath = join(dir, SHARD_INDEX_FILE);
  let raw: WeightMap;
  if ((await pathKind(weightsPath)) !== 'missing') {
    raw = (await readSafetensors(weightsPath)).tensors;
  } else if ((await pathKind(indexPath)) !== 'missing') {
    raw = await readShards(dir, indexPath);
  } else {
    const hasPickle = (await pathKind(join(dir, 'pytorch_model.bin'))) !== 'missing';
    throw new ModelError(
      'MODEL_NOT_FOUND',
      `${weightsPath} is missing` +
        (hasPickle ? '; only pytorch_model.bin is there: save the model with safe_serialization=True to get safetensors' : ''),
    );
  }
  const weights = canonicalWeightNames(raw);
  checkWeights(config, weights, weightsPath);
  return { config, weights, generationConfig: await readGenerationConfig(dir, config) };
}

async function readShards(dir: string, indexPath: string): Promise<WeightMap> {
  const index = await readJson(indexPath, 'MODEL_CORRUPT');
  const weightMap = (index as { weight_map?: unknown }).weight_map;
  if (typeof weightMap !== 'object' || weightMap === null) {
    throw new ModelError('MODEL_CORRUPT', `${indexPath} has no "weight_map" object`);
  }
  const raw: WeightMap = new Map();
  for (const shard of new Set(Object.values(weightMap))) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new ModelError('MODEL_CORRUPT', `${indexPath} names shard ${JSON.stringify(shard)}, expected a file name in ${dir}`);
    }
    for (const [name, tensor] of (await readSafetensors(join(dir, shard))).tensors) raw.set(name, tensor);
  }
  return raw;
}

export async function readConfig(dir: string): Promise<Gpt2Config> {
  const path = join(dir, CONFIG_FILE);
  if ((await pathKind(path)) === 'missing') throw new ModelError('MODEL_NOT_FOUND', `${path} is missing`);
  return validateConfig(await readJson(path, 'CONFIG_INVALID'), path);
}

/** generation_config.json, or the ids from config.json when the folder has none (older checkpoints). */
export async function readGenerationConfig(dir: string, config: Gpt2Config): Promise<GenerationConfig> {
  const path = join(dir, GENERATION_CONFIG_FILE);
  if ((await pathKind(path)) === 'missing') return defaultGenerationConfig(config);
  const raw = await readJson(path, 'CONFIG_INVALID');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelError('CONFIG_INVALID', `${path}: expected a JSON object`);
  }
  const fields = raw as Record<string, unknown>;
  for (const key of ['bos_token_id', 'eos_token_id']) {
    if (fields[key] !== undefined && !Number.isInteger(fields[key])) {
      throw new ModelError('CONFIG_INVALID', `${path}: "${key}" must be an integer, got ${JSON.stringify(fields[key])}`);
    }
  }
  return { ...defaultGenerationConfig(config), ...fields } as GenerationConfig;
}

async function requireFolder(dir: string, missingMessage: string): Promise<void> {
  const kind = await pathKind(dir);
  if (kind === 'missing') throw new ModelError('MODEL_NOT_FOUND', missingMessage);
  if (kind === 'file') throw new ModelError('MODEL_NOT_FOUND', `${dir} is a file, not a model folder`);
}

async function pathKind(path: string): Promise<'missing' | 'file' | 'dir'> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'file';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw error;
  }
}

async function readJson(path: string, code: 'CONFIG_INVALID' | 'MODEL_CORRUPT'): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelError(code, `${path} is not valid JSON (${(error as Error).message})`);
  }
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}
