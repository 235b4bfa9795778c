import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { envName, loadConfig, type TunebotConfig } from '../core/config.js';
import { PRESET_NAMES, type PresetName, parameterCount } from '../model/config.js';
import { ModelError } from '../model/errors.js';
import { EXAMPLE_EMBEDDING_REPO } from '../model/embedding/embedding-folder.js';
import { pullEmbeddingModel } from '../model/embedding/pull-embedding-model.js';
import { gpt2Checkpoint, type PullProgress, pullFromHub } from '../model/hub/hub.js';
import { importModel, initModel } from '../model/files/model-dir.js';
import { createProgressBar, type ProgressBar } from './progress.js';
import { type CliCommand, UsageError, integerOption, parseCommandArgs } from './args.js';

/**
 * Checked before any work: a pull would otherwise download the whole checkpoint and only then
 * find that it cannot write the model folder.
 */
function requireNewFolder(out: string): void {
  if (existsSync(out)) throw new ModelError('OPTIONS_INVALID', `${out} already exists; give --out a new folder (a model folder is never overwritten)`);
}

const init: CliCommand = {
  words: ['model', 'init'],
  usage: 'tunebot model init --preset tiny|gpt2|gpt2-medium [--seed N] --out DIR',
  summary: "a new model with GPT-2's initialization",
  async run(args) {
    const { values } = parseCommandArgs(args, {
      preset: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
    });
    const preset = values.preset ?? 'tiny';
    if (!PRESET_NAMES.includes(preset as PresetName)) {
      throw new UsageError(`--preset must be one of ${PRESET_NAMES.join(', ')}, got "${preset}"`);
    }
    if (!values.out) throw new UsageError('--out DIR is required');
    const seed = integerOption(values.seed, 'seed', 0) ?? 0;
    requireNewFolder(values.out);
    const files = await initModel(values.out, preset as PresetName, seed);
    console.log(`created ${preset} model (${parameterCount(files.config).toLocaleString('en')} parameters, seed ${seed}) in ${values.out}`);
  },
};

/** A progress bar per file of a hub pull, as the pull reports them. */
function pullProgressBars(): { onProgress: (progress: PullProgress) => void; finish: () => void } {
  const bars = new Map<string, ProgressBar>();
  return {
    onProgress(progress) {
      let bar = bars.get(progress.file);
      if (!bar) {
        bar = createProgressBar(`[${progress.fileIndex + 1}/${progress.fileCount}] ${progress.file}`, progress.totalBytes);
        bars.set(progress.file, bar);
      }
      bar.update(progress.receivedBytes);
      if (progress.receivedBytes >= progress.totalBytes) bar.finish();
    },
    finish() {
      for (const bar of bars.values()) bar.finish();
    },
  };
}

const pull: CliCommand = {
  words: ['model', 'pull'],
  usage: 'tunebot model pull <hub-repo> [--revision REV] [--onnx] --out DIR | <hub-repo> --embedding [--revision REV] [--out DIR]',
  summary:
    'download a GPT-2 checkpoint, or with --embedding a sentence-embedding model for hybrid retrieval (into retrieval.embeddingModel unless --out), from the Hugging Face hub (HF_ENDPOINT, HF_TOKEN honoured)',
  async run(args) {
    const { values, positionals } = parseCommandArgs(args, {
      revision: { type: 'string' },
      onnx: { type: 'boolean' },
      embedding: { type: 'boolean' },
      out: { type: 'string' },
    });
    const [repo] = positionals;
    if (!repo || positionals.length > 1) {
      throw new UsageError(`give exactly one hub repo, e.g. gpt2 or openai-community/gpt2${values.embedding ? `, or ${EXAMPLE_EMBEDDING_REPO} with --embedding` : ''}`);
    }
    const config = loadConfig();
    if (values.embedding) {
      if (values.onnx) throw new UsageError('--onnx is for GPT-2 checkpoints; an embedding model is always pulled as its ONNX export');
      await pullEmbedding(repo, values.revision, values.out ?? config.retrieval.embeddingModel, config);
      return;
    }
    if (!values.out) throw new UsageError('--out DIR is required');
    requireNewFolder(values.out);
    // The raw download sits beside the model folder, so an interrupted pull resumes from it.
    const downloadDir = `${values.out}.download`;
    const progress = pullProgressBars();
    const pulled = await pullFromHub({
      repo,
      revision: values.revision,
      outDir: downloadDir,
      endpoint: config.hub.endpoint,
      files: gpt2Checkpoint(values.onnx ?? false),
      onProgress: progress.onProgress,
    });
    progress.finish();
    const files = await importModel(downloadDir, values.out, 'safetensors');
    await rm(downloadDir, { recursive: true, force: true });
    console.log(`pulled ${repo} at ${pulled.commit.slice(0, 12)} (${parameterCount(files.config).toLocaleString('en')} parameters) into ${values.out}`);
  },
};

async function pullEmbedding(repo: string, revision: string | undefined, out: string | null, config: TunebotConfig): Promise<void> {
  if (!out) throw new UsageError(`--out DIR is required when retrieval.embeddingModel (${envName(['retrieval', 'embeddingModel'])}) is not set`);
  requireNewFolder(out);
  const progress = pullProgressBars();
  const pulled = await pullEmbeddingModel({ repo, revision, outDir: out, endpoint: config.hub.endpoint, onProgress: progress.onProgress });
  progress.finish();
  console.log(`pulled ${repo} at ${pulled.commit.slice(0, 12)} (${pulled.dimension}-dimensional sentence embeddings, ${pulled.pooling} pooling) into ${out}`);
  const configured = config.retrieval.embeddingModel;
  if (configured === null || resolve(configured) !== resolve(out)) {
    console.log(`retrieval turns hybrid (BM25 + dense) once retrieval.embeddingModel names it: ${envName(['retrieval', 'embeddingModel'])}=${out}`);
  }
}

const importCommand: CliCommand = {
  words: ['model', 'import'],
  usage: 'tunebot model import <folder> [--format safetensors|onnx] --out DIR',
  summary: 'import a Hugging Face GPT-2 checkpoint or an Optimum / Transformers.js ONNX export',
  async run(args) {
    const { values, positionals } = parseCommandArgs(args, {
      format: { type: 'string' },
      out: { type: 'string' },
    });
    const [source] = positionals;
    if (!source || positionals.length > 1) throw new UsageError('give exactly one source folder');
    if (!values.out) throw new UsageError('--out DIR is required');
    const format = values.format ?? 'safetensors';
    if (format !== 'safetensors' && format !== 'onnx') throw new UsageError(`--format must be safetensors or onnx, got "${format}"`);
    requireNewFolder(values.out);
    const files = await importModel(source, values.out, format);
    console.log(`imported ${source} (${parameterCount(files.config).toLocaleString('en')} parameters) into ${values.out}`);
  },
};

export const modelCommands: readonly CliCommand[] = [init, pull, importCommand];
