import { resolve } from 'node:path';
import { type FeatureExtractionPipeline, pipeline } from '@huggingface/transformers';
import { ModelError } from '../errors.js';
import { type Pooling, checkEmbeddingFolder, readPooling } from './embedding-folder.js';

/** What dense retrieval needs of a model: texts in, unit vectors out. */
export interface TextEmbedder {
  /** One unit-length vector per text, in the texts' order. */
  embed(texts: readonly string[]): Promise<Float32Array[]>;
  readonly dimension: number;
  /** Frees the model; embed fails afterwards. */
  close(): Promise<void>;
}

export interface SentenceEmbedderOptions {
  /** Texts per model run; default 32. */
  readonly batchSize?: number;
  /** Threads per operator; 0 (the default) lets ONNX Runtime choose. */
  readonly intraOpThreads?: number;
}

const DEFAULT_BATCH_SIZE = 32;

/**
 * A sentence-embedding model folder (embedding-folder.ts) run by Transformers.js's
 * feature-extraction pipeline on ONNX Runtime's CPU provider: tokenize, last hidden state,
 * pooled as 1_Pooling/config.json says, scaled to unit length. Offline: only the folder is read.
 */
export class SentenceEmbedder implements TextEmbedder {
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly extractor: FeatureExtractionPipeline,
    readonly pooling: Pooling,
    private readonly batchSize: number,
    readonly dimension: number,
  ) {}

  static async load(dir: string, options: SentenceEmbedderOptions = {}): Promise<SentenceEmbedder> {
    const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new ModelError('OPTIONS_INVALID', `batchSize must be a whole number >= 1, got ${batchSize}`);
    const intraOpThreads = options.intraOpThreads ?? 0;
    if (!Number.isInteger(intraOpThreads) || intraOpThreads < 0) {
      throw new ModelError('OPTIONS_INVALID', `intraOpThreads must be a whole number >= 0, got ${intraOpThreads}`);
    }
    await checkEmbeddingFolder(dir);
    const pooling = await readPooling(dir);
    let extractor: FeatureExtractionPipeline;
    try {
      // An absolute path is never taken for a hub id; local_files_only forbids any download.
      extractor = await pipeline('feature-extraction', resolve(dir), {
        local_files_only: true,
        dtype: 'fp32',
        device: 'cpu',
        session_options: intraOpThreads > 0 ? { intraOpNumThreads: intraOpThreads } : {},
      });
    } catch (error) {
      throw new ModelError('MODEL_CORRUPT', `cannot load the sentence-embedding model in ${dir}: ${(error as Error).message}`, { cause: error });
    }
    const [probe] = await embedBatch(extractor, ['dimension probe'], pooling, dir);
    return new SentenceEmbedder(dir, extractor, pooling, batchSize, probe.length);
  }

  /**
   * Texts are run in batches of similar length, so that padding costs little; each vector
   * depends only on its own text.
   */
  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    if (this.closed) throw new ModelError('CANCELLED', `the sentence embedder for ${this.dir} is closed`);
    const order = texts.map((_, i) => i).sort((a, b) => texts[a].length - texts[b].length);
    const vectors = new Array<Float32Array>(texts.length);
    for (let start = 0; start < order.length; start += this.batchSize) {
      const slots = order.slice(start, start + this.batchSize);
      const batch = await embedBatch(this.extractor, slots.map((i) => texts[i]), this.pooling, this.dir);
      slots.forEach((slot, i) => (vectors[slot] = batch[i]));
    }
    return vectors;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.extractor.dispose();
  }
}

async function embedBatch(extractor: FeatureExtractionPipeline, texts: string[], pooling: Pooling, dir: string): Promise<Float32Array[]> {
  let output;
  try {
    output = await extractor(texts, { pooling, normalize: true });
  } catch (error) {
    throw new ModelError('MODEL_CORRUPT', `the sentence-embedding model in ${dir} failed on ${texts.length} texts: ${(error as Error).message}`, { cause: error });
  }
  const [rows, dimension] = output.dims;
  if (output.dims.length !== 2 || rows !== texts.length || !(output.data instanceof Float32Array)) {
    throw new ModelError('MODEL_CORRUPT', `the sentence-embedding model in ${dir} gave ${output.type} [${output.dims.join(', ')}] for ${texts.length} texts, not float32 [${texts.length}, hidden]`);
  }
  const data = output.data;
  return Array.from({ length: rows }, (_, row) => data.slice(row * dimension, (row + 1) * dimension));
}
