import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeModel } from '../../../src/model/onnx/encode.js';
import { writeSafetensors } from '../../../src/model/files/safetensors.js';
import type { WeightMap } from '../../../src/model/tensor.js';
import { buildBertGraph } from './bert-graph.js';
import { type BertConfig, type BertShape, TINY_BERT_SHAPE, bertConfig, initBertWeights } from './bert-weights.js';
import { tokenizerConfigJson, tokenizerJson, wordPieceVocab } from './wordpiece-tokenizer.js';

export interface TinyBertOptions {
  readonly seed?: number;
  /** Default TINY_BERT_SHAPE with the vocabulary's size. */
  readonly shape?: Partial<BertShape>;
  /** What 1_Pooling/config.json asks for; null writes no pooling file (mean is then assumed). */
  readonly pooling?: 'mean' | 'cls' | 'max' | null;
}

export interface TinyBert {
  readonly dir: string;
  readonly config: BertConfig;
  readonly weights: WeightMap;
  readonly vocab: ReadonlyMap<string, number>;
}

/**
 * Writes a sentence-transformers repo in the HF layout, as the hub serves all-MiniLM-L6-v2:
 * config.json, tokenizer.json, tokenizer_config.json, model.safetensors, onnx/model.onnx and
 * 1_Pooling/config.json, with seeded random weights.
 */
export async function writeTinyBert(dir: string, options: TinyBertOptions = {}): Promise<TinyBert> {
  const vocab = wordPieceVocab();
  const config = bertConfig({ vocab_size: vocab.size, ...TINY_BERT_SHAPE, ...options.shape });
  const weights = initBertWeights(config, options.seed ?? 0);
  await mkdir(join(dir, 'onnx'), { recursive: true });
  const json = (value: object) => `${JSON.stringify(value, null, 2)}\n`;
  await writeFile(join(dir, 'config.json'), json(config));
  await writeFile(join(dir, 'tokenizer.json'), json(tokenizerJson(vocab)));
  await writeFile(join(dir, 'tokenizer_config.json'), json(tokenizerConfigJson(config.max_position_embeddings)));
  await writeSafetensors(join(dir, 'model.safetensors'), weights, { format: 'pt' });
  await writeFile(join(dir, 'onnx', 'model.onnx'), encodeModel(buildBertGraph(config, weights)));
  const pooling = options.pooling === undefined ? 'mean' : options.pooling;
  if (pooling !== null) {
    await mkdir(join(dir, '1_Pooling'), { recursive: true });
    await writeFile(
      join(dir, '1_Pooling', 'config.json'),
      json({
        word_embedding_dimension: config.hidden_size,
        pooling_mode_cls_token: pooling === 'cls',
        pooling_mode_mean_tokens: pooling === 'mean',
        pooling_mode_max_tokens: pooling === 'max',
        pooling_mode_mean_sqrt_len_tokens: false,
      }),
    );
  }
  return { dir, config, weights, vocab };
}
