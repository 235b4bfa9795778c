import { join } from 'node:path';
import { type PresetName, presetConfig } from '../config.js';
import { buildGpt2Graph } from '../gpt2-graph.js';
import { type ModelFiles, defaultGenerationConfig, readHfCheckpoint, writeModelDir } from './model-files.js';
import { encodeModel } from '../onnx/encode.js';
import { readOnnxExportDir } from './onnx-import.js';
import { gpt2TokenizerFiles } from './tokenizer.js';
import { initWeights } from './weights.js';

/** Where a model directory keeps its interchange graph (Optimum's layout). */
export const ONNX_MODEL_PATH = join('onnx', 'model.onnx');

/**
 * Writes a complete model directory (docs/architecture.md): config, generation config,
 * weights, the GPT-2 tokenizer files and onnx/model.onnx generated from the weights, atomically.
 */
export async function saveModel(
  dir: string,
  files: ModelFiles,
  options: { overwrite?: boolean; extraFiles?: ReadonlyMap<string, Uint8Array | string> } = {},
): Promise<void> {
  const extraFiles = new Map<string, Uint8Array | string>([...(await gpt2TokenizerFiles(files.config.n_positions)), ...(options.extraFiles ?? [])]);
  extraFiles.set(ONNX_MODEL_PATH, encodeModel(buildGpt2Graph(files.config, files.weights, 'export')));
  await writeModelDir(dir, files, extraFiles, { overwrite: options.overwrite });
}

/** `tunebot model init`: a new model with GPT-2's initialization. */
export async function initModel(dir: string, preset: PresetName, seed: number): Promise<ModelFiles> {
  const config = presetConfig(preset);
  const files: ModelFiles = { config, weights: initWeights(config, seed), generationConfig: defaultGenerationConfig(config) };
  await saveModel(dir, files);
  return files;
}

/**
 * Imports a Hugging Face GPT-2 checkpoint folder (model.safetensors + config.json) or an
 * Optimum / Transformers.js ONNX export (config.json + onnx/model.onnx) into a model directory.
 */
export async function importModel(sourceDir: string, dir: string, format: 'safetensors' | 'onnx'): Promise<ModelFiles> {
  const files = format === 'onnx' ? await readOnnxExportDir(sourceDir) : await readHfCheckpoint(sourceDir);
  await saveModel(dir, files);
  return files;
}
