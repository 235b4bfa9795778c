import { layerNorm } from '../../../src/model/gpt2-graph.js';
import { GraphBuilder, type Graph, type Value } from '../../../src/model/onnx/graph.js';
import type { WeightMap } from '../../../src/model/tensor.js';
import { getWeight } from '../../../src/model/files/weights.js';
import type { BertConfig } from './bert-weights.js';

/** Added to the scores of padding keys, as HF's extended attention mask does (finite, so no NaN). */
const MASKED_SCORE = -1e9;

/**
 * BertModel's forward as onnx/model.onnx, in the layout of Optimum's feature-extraction export:
 * input_ids, attention_mask, token_type_ids (B, T) int64 -> last_hidden_state (B, T, C).
 * Post-layer-norm blocks, exact (erf) GELU, absolute positions 0..T-1. Weights are
 * initializers under their HF names and layouts (nn.Linear [out, in], transposed in the graph;
 * ONNX Runtime folds those transposes once at load).
 */
export function buildBertGraph(config: BertConfig, weights: WeightMap): Graph {
  const g = new GraphBuilder('bert');
  const C = config.hidden_size;
  const H = config.num_attention_heads;
  const D = C / H;
  const epsilon = config.layer_norm_eps;
  const weight = (name: string): Value => g.weight(name, getWeight(weights, name));
  // x (..., in) @ W^T (in, out) + b
  const dense = (x: Value, prefix: string): Value =>
    g.op('Add', [g.op('MatMul', [x, g.op('Transpose', [weight(`${prefix}.weight`)], { attributes: { perm: [1, 0] } })]), weight(`${prefix}.bias`)]);
  const norm = (x: Value, prefix: string): Value => layerNorm(g, x, weight(`${prefix}.weight`), weight(`${prefix}.bias`), epsilon);

  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const attentionMask = g.input('attention_mask', 'int64', ['batch_size', 'sequence_length']);
  const tokenTypeIds = g.input('token_type_ids', 'int64', ['batch_size', 'sequence_length']);

  // (B, 1, 1, T): 0 for real keys, MASKED_SCORE for padding
  const maskBias = g.scoped('mask', () => {
    const real = g.op('Cast', [attentionMask], { attributes: { to: 1 } });
    const padding = g.op('Sub', [g.constFloat(1), real]);
    return g.op('Unsqueeze', [g.op('Mul', [padding, g.constFloat(MASKED_SCORE)]), g.constInt64([1, 2])]);
  });

  // x = LayerNorm(word[input_ids] + position[0..T-1] + token_type[token_type_ids]): (B, T, C)
  let x = g.scoped('embeddings', () => {
    const length = g.op('Squeeze', [g.op('Slice', [g.op('Shape', [inputIds]), g.constInt64([1]), g.constInt64([2])]), g.constInt64([0])]);
    const positions = g.op('Range', [g.constInt64(0), length, g.constInt64(1)]); // (T)
    const words = g.op('Gather', [weight('embeddings.word_embeddings.weight'), inputIds], { attributes: { axis: 0 } });
    const placed = g.op('Gather', [weight('embeddings.position_embeddings.weight'), positions], { attributes: { axis: 0 } }); // (T, C)
    const types = g.op('Gather', [weight('embeddings.token_type_embeddings.weight'), tokenTypeIds], { attributes: { axis: 0 } });
    return norm(g.op('Add', [g.op('Add', [words, placed]), types]), 'embeddings.LayerNorm');
  });

  const scale = g.constFloat(1 / Math.sqrt(D));
  const headsShape = g.constInt64([0, 0, H, D]);
  const headsFirst = (t: Value) => g.op('Transpose', [g.op('Reshape', [t, headsShape])], { attributes: { perm: [0, 2, 1, 3] } }); // (B, H, T, D)
  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    const p = `encoder.layer.${layer}.`;
    g.scoped(`encoder.layer.${layer}`, () => {
      const attended = g.scoped('attention', () => {
        const q = headsFirst(dense(x, `${p}attention.self.query`));
        const k = headsFirst(dense(x, `${p}attention.self.key`));
        const v = headsFirst(dense(x, `${p}attention.self.value`));
        const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [k], { attributes: { perm: [0, 1, 3, 2] } })]), scale]), maskBias]); // (B, H, T, T)
        const context = g.op('MatMul', [g.op('Softmax', [scores], { attributes: { axis: -1 } }), v]); // (B, H, T, D)
        const merged = g.op('Reshape', [g.op('Transpose', [context], { attributes: { perm: [0, 2, 1, 3] } }), g.constInt64([0, 0, C])]);
        return dense(merged, `${p}attention.output.dense`);
      });
      x = norm(g.op('Add', [x, attended]), `${p}attention.output.LayerNorm`);
      const expanded = g.scoped('intermediate', () => gelu(g, dense(x, `${p}intermediate.dense`)));
      x = norm(g.op('Add', [x, dense(expanded, `${p}output.dense`)]), `${p}output.LayerNorm`);
    });
  }
  g.output(x, 'last_hidden_state', 'float32', ['batch_size', 'sequence_length', C]);
  return g.build();
}

/** BERT's gelu: 0.5 x (1 + erf(x / sqrt(2))). */
function gelu(g: GraphBuilder, x: Value): Value {
  const erf = g.op('Erf', [g.op('Mul', [x, g.constFloat(Math.SQRT1_2)])]);
  return g.op('Mul', [g.op('Mul', [x, g.constFloat(0.5)]), g.op('Add', [erf, g.constFloat(1)])]);
}
