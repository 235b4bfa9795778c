import { SeededRandom } from '../../../src/model/random.js';
import { type WeightMap, elementCount } from '../../../src/model/tensor.js';

/** The BertConfig fields config.json carries, as Hugging Face transformers writes them. */
export interface BertConfig {
  readonly model_type: 'bert';
  readonly architectures: readonly string[];
  readonly vocab_size: number;
  readonly hidden_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly intermediate_size: number;
  readonly hidden_act: 'gelu';
  readonly max_position_embeddings: number;
  readonly type_vocab_size: number;
  readonly layer_norm_eps: number;
  readonly initializer_range: number;
  readonly pad_token_id: number;
  readonly hidden_dropout_prob: number;
  readonly attention_probs_dropout_prob: number;
  readonly position_embedding_type: 'absolute';
}

export type BertShape = Pick<
  BertConfig,
  'vocab_size' | 'hidden_size' | 'num_hidden_layers' | 'num_attention_heads' | 'intermediate_size' | 'max_position_embeddings'
> &
  Partial<Pick<BertConfig, 'initializer_range' | 'layer_norm_eps'>>;

/** The tests' model: hidden 32, 2 layers of 2 heads, FFN 64. */
export const TINY_BERT_SHAPE = { hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 64 } as const;

/** all-MiniLM-L6-v2's shape, for timing a real-size model with random weights. */
export const MINILM_L6_SHAPE = {
  vocab_size: 30522,
  hidden_size: 384,
  num_hidden_layers: 6,
  num_attention_heads: 12,
  intermediate_size: 1536,
  max_position_embeddings: 512,
} as const;

export function bertConfig(shape: BertShape): BertConfig {
  if (shape.hidden_size % shape.num_attention_heads !== 0) {
    throw new RangeError(`hidden_size ${shape.hidden_size} is not a multiple of num_attention_heads ${shape.num_attention_heads}`);
  }
  return {
    model_type: 'bert',
    architectures: ['BertModel'],
    hidden_act: 'gelu',
    type_vocab_size: 2,
    layer_norm_eps: 1e-12,
    initializer_range: 0.02,
    pad_token_id: 0,
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    position_embedding_type: 'absolute',
    ...shape,
  };
}

/**
 * BertModel's weights (no pooler: sentence embeddings pool the last hidden state) under HF's
 * names. Linear layers are nn.Linear, stored [out, in].
 */
export function bertWeightShapes(config: BertConfig): Map<string, number[]> {
  const c = config.hidden_size;
  const inner = config.intermediate_size;
  const shapes = new Map<string, number[]>([
    ['embeddings.word_embeddings.weight', [config.vocab_size, c]],
    ['embeddings.position_embeddings.weight', [config.max_position_embeddings, c]],
    ['embeddings.token_type_embeddings.weight', [config.type_vocab_size, c]],
    ['embeddings.LayerNorm.weight', [c]],
    ['embeddings.LayerNorm.bias', [c]],
  ]);
  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    const p = `encoder.layer.${layer}.`;
    for (const projection of ['query', 'key', 'value']) {
      shapes.set(`${p}attention.self.${projection}.weight`, [c, c]);
      shapes.set(`${p}attention.self.${projection}.bias`, [c]);
    }
    shapes.set(`${p}attention.output.dense.weight`, [c, c]);
    shapes.set(`${p}attention.output.dense.bias`, [c]);
    shapes.set(`${p}attention.output.LayerNorm.weight`, [c]);
    shapes.set(`${p}attention.output.LayerNorm.bias`, [c]);
    shapes.set(`${p}intermediate.dense.weight`, [inner, c]);
    shapes.set(`${p}intermediate.dense.bias`, [inner]);
    shapes.set(`${p}output.dense.weight`, [c, inner]);
    shapes.set(`${p}output.dense.bias`, [c]);
    shapes.set(`${p}output.LayerNorm.weight`, [c]);
    shapes.set(`${p}output.LayerNorm.bias`, [c]);
  }
  return shapes;
}

/**
 * BERT's initialization, normal(0, initializer_range) for matrices and embeddings, except that
 * biases and layer-norm parameters get seeded values too (BERT starts them at 0 and 1), so a
 * reference check exercises every weight.
 */
export function initBertWeights(config: BertConfig, seed: number): WeightMap {
  const random = new SeededRandom(seed);
  const weights: WeightMap = new Map();
  for (const [name, dims] of bertWeightShapes(config)) {
    const data = new Float32Array(elementCount(dims));
    const isNormGain = /LayerNorm\.weight$/.test(name);
    const isSmall = isNormGain || name.endsWith('.bias');
    for (let i = 0; i < data.length; i++) {
      data[i] = isSmall ? (isNormGain ? 1 : 0) + 0.1 * random.normal() : config.initializer_range * random.normal();
    }
    weights.set(name, { dims, data });
  }
  return weights;
}
