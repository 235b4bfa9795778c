import { type Gpt2Config, headSize } from './config.js';
import { GraphBuilder, type Graph, type Value } from './onnx/graph.js';
import type { WeightMap } from './tensor.js';
import { getWeight } from './weights.js';

/**
 * The GPT-2 forward graph with a KV cache, in two flavours that share every layer:
 *
 * - `export`: the interchange file onnx/model.onnx, with the names and layouts of Optimum's
 *   text-generation-with-past export, so Transformers.js and Optimum load it unchanged:
 *   input_ids, attention_mask, position_ids, past_key_values.N.key/value [B, H, P, D]
 *   -> logits [B, T, V], present.N.key/value [B, H, P+T, D].
 * - `runtime`: what tunebot itself runs. ONNX Runtime's Node binding copies every output
 *   into a fresh buffer, so a cache handed back whole each step would cost O(context) copies
 *   per token, and concatenating past and new keys inside the graph costs as much again.
 *   Here the cache lives in JavaScript (kv-cache.ts) in the layouts the attention MatMuls
 *   take as they are: past.N.key [B, H, D, P] (keys transposed) and past.N.value [B, H, P, D],
 *   fed with no copy. Attention scores the past and the step's own tokens separately and
 *   joins only the small score matrices; the graph returns the step's keys and values,
 *   new.N.key/value [B, H, T, D], and the last position's logits [B, V] (a 512-token prompt
 *   needs one row of the 50257-wide head, not 512).
 */
export type Gpt2GraphKind = 'export' | 'runtime';

/** Added to the scores of masked keys; finite, so a row with every key masked stays finite. */
const MASKED_SCORE = -1e9;

export function buildGpt2Graph(config: Gpt2Config, weights: WeightMap, kind: Gpt2GraphKind): Graph {
  const g = new GraphBuilder(kind === 'export' ? 'gpt2' : 'gpt2_runtime');
  const C = config.n_embd;
  const H = config.n_head;
  const D = headSize(config);
  const V = config.vocab_size;
  const w = (name: string): Value => g.weight(name, getWeight(weights, name));

  // inputs: ids and positions (B, T); attention_mask (B, P+T), 1 = attend, 0 = padding
  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const attentionMask = g.input('attention_mask', 'int64', ['batch_size', 'past_sequence_length + sequence_length']);
  const positionIds = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  const pastNames = (layer: number) =>
    kind === 'export'
      ? { key: `past_key_values.${layer}.key`, value: `past_key_values.${layer}.value` }
      : { key: `past.${layer}.key`, value: `past.${layer}.value` };
  const pastValueDims = ['batch_size', H, 'past_sequence_length', D];
  const pastKeyDims = kind === 'export' ? pastValueDims : ['batch_size', H, D, 'past_sequence_length'];
  const past = Array.from({ length: config.n_layer }, (_, layer) => ({
    key: g.input(pastNames(layer).key, 'float32', pastKeyDims),
    value: g.input(pastNames(layer).value, 'float32', pastValueDims),
  }));

  const wte = w('wte.weight');
  const attentionBias = g.scoped('mask', () => buildAttentionBias(g, inputIds, attentionMask));

  // x = wte[input_ids] + wpe[position_ids]: (B, T, C)
  let x = g.scoped('embed', () =>
    g.op('Add', [g.op('Gather', [wte, inputIds], { attributes: { axis: 0 } }), g.op('Gather', [w('wpe.weight'), positionIds], { attributes: { axis: 0 } })]),
  );

  const cacheOutputs: { key: Value; value: Value }[] = [];
  for (let layer = 0; layer < config.n_layer; layer++) {
    const p = `h.${layer}.`;
    g.scoped(`h.${layer}`, () => {
      const normed1 = layerNorm(g, x, w(`${p}ln_1.weight`), w(`${p}ln_1.bias`), config.layer_norm_epsilon);
      const attention = g.scoped('attn', () =>
        selfAttention(g, kind, normed1, past[layer], attentionBias, {
          qkvWeight: w(`${p}attn.c_attn.weight`),
          qkvBias: w(`${p}attn.c_attn.bias`),
          projWeight: w(`${p}attn.c_proj.weight`),
          projBias: w(`${p}attn.c_proj.bias`),
          C,
          H,
          D,
        }),
      );
      cacheOutputs.push(attention.cache);
      x = g.op('Add', [x, attention.output]);
      const normed2 = layerNorm(g, x, w(`${p}ln_2.weight`), w(`${p}ln_2.bias`), config.layer_norm_epsilon);
      const mlp = g.scoped('mlp', () => {
        const hidden = gelu(g, linear(g, normed2, w(`${p}mlp.c_fc.weight`), w(`${p}mlp.c_fc.bias`)));
        return linear(g, hidden, w(`${p}mlp.c_proj.weight`), w(`${p}mlp.c_proj.bias`));
      });
      x = g.op('Add', [x, mlp]);
    });
  }

  g.scoped('head', () => {
    if (kind === 'export') {
      // logits for every position: (B, T, C) -> (B*T, C) @ wte^T -> (B, T, V)
      const normed = layerNorm(g, x, w('ln_f.weight'), w('ln_f.bias'), config.layer_norm_epsilon);
      const rows = g.op('Reshape', [normed, g.constInt64([-1, C])]);
      const logits = g.op('Gemm', [rows, wte], { attributes: { transB: 1 } });
      const batchAndTime = g.op('Slice', [g.op('Shape', [inputIds]), g.constInt64([0]), g.constInt64([2])]);
      const shape = g.op('Concat', [batchAndTime, g.constInt64([V])], { attributes: { axis: 0 } });
      g.output(g.op('Reshape', [logits, shape]), 'logits', 'float32', ['batch_size', 'sequence_length', V]);
    } else {
      // the last position only: (B, T, C) -> (B, C) @ wte^T -> (B, V)
      const last = g.op('Slice', [x, g.constInt64([-1]), g.constInt64([Number.MAX_SAFE_INTEGER]), g.constInt64([1])]);
      const lastRow = g.op('Squeeze', [last, g.constInt64([1])]);
      const normed = layerNorm(g, lastRow, w('ln_f.weight'), w('ln_f.bias'), config.layer_norm_epsilon);
      g.output(g.op('Gemm', [normed, wte], { attributes: { transB: 1 } }), 'logits', 'float32', ['batch_size', V]);
    }
  });

  cacheOutputs.forEach((cache, layer) => {
    const names = kind === 'export' ? { key: `present.${layer}.key`, value: `present.${layer}.value` } : { key: `new.${layer}.key`, value: `new.${layer}.value` };
    const dims = kind === 'export' ? ['batch_size', H, 'past_sequence_length + sequence_length', D] : ['batch_size', H, 'sequence_length', D];
    g.output(cache.key, names.key, 'float32', dims);
    g.output(cache.value, names.value, 'float32', dims);
  });
  return g.build();
}

/**
 * The additive attention bias (B, 1, T, P+T): 0 where query i may see key j (j <= P + i and
 * attention_mask[b, j] = 1), MASKED_SCORE elsewhere. Computed once, shared by every layer.
 */
function buildAttentionBias(g: GraphBuilder, inputIds: Value, attentionMask: Value): Value {
  const zero = g.constInt64(0);
  const one = g.constInt64(1);
  const scalarDim = (shapeOf: Value, axis: number) =>
    g.op('Squeeze', [g.op('Slice', [g.op('Shape', [shapeOf]), g.constInt64([axis]), g.constInt64([axis + 1])]), g.constInt64([0])]);
  const total = scalarDim(attentionMask, 1); // P + T
  const newLength = scalarDim(inputIds, 1); // T
  const pastLength = g.op('Sub', [total, newLength]);
  const queryPositions = g.op('Unsqueeze', [g.op('Range', [pastLength, total, one]), g.constInt64([1])]); // (T, 1)
  const keyPositions = g.op('Unsqueeze', [g.op('Range', [zero, total, one]), g.constInt64([0])]); // (1, P+T)
  const causal = g.op('LessOrEqual', [keyPositions, queryPositions]); // (T, P+T)
  const keyIsReal = g.op('Unsqueeze', [g.op('Cast', [attentionMask], { attributes: { to: 9 } }), g.constInt64([1, 2])]); // (B, 1, 1, P+T)
  const allowed = g.op('And', [causal, keyIsReal]); // (B, 1, T, P+T)
  return g.op('Where', [allowed, g.constFloat(0), g.constFloat(MASKED_SCORE)]);
}

interface AttentionWeights {
  qkvWeight: Value; // (C, 3C)
  qkvBias: Value; // (3C)
  projWeight: Value; // (C, C)
  projBias: Value; // (C)
  C: number;
  H: number;
  D: number;
}

/** Causal multi-head self-attention with a KV cache; x is (B, T, C), returns (B, T, C). */
function selfAttention(
  g: GraphBuilder,
  kind: Gpt2GraphKind,
  x: Value,
  past: { key: Value; value: Value },
  attentionBias: Value,
  p: AttentionWeights,
): { output: Value; cache: { key: Value; value: Value } } {
  const qkv = linear(g, x, p.qkvWeight, p.qkvBias); // (B, T, 3C)
  const [q, k, v] = g.opMulti('Split', [qkv, g.constInt64([p.C, p.C, p.C])], 3, { attributes: { axis: 2 } });
  const headsShape = g.constInt64([0, 0, p.H, p.D]);
  const toHeads = (t: Value) => g.op('Reshape', [t, headsShape]); // (B, T, H, D)
  const headsFirst = (t: Value) => g.op('Transpose', [toHeads(t)], { attributes: { perm: [0, 2, 1, 3] } }); // (B, H, T, D)
  const query = headsFirst(q);
  const scale = g.constFloat(1 / Math.sqrt(p.D));
  const attend = (scores: Value) => g.op('Softmax', [g.op('Add', [g.op('Mul', [scores, scale]), attentionBias])], { attributes: { axis: -1 } });
  let context: Value; // (B, H, T, D)
  let cache: { key: Value; value: Value };
  if (kind === 'export') {
    const present = (t: Value, pastT: Value) => g.op('Concat', [pastT, headsFirst(t)], { attributes: { axis: 2 } });
    cache = { key: present(k, past.key), value: present(v, past.value) }; // (B, H, P+T, D)
    const keysT = g.op('Transpose', [cache.key], { attributes: { perm: [0, 1, 3, 2] } }); // (B, H, D, P+T)
    context = g.op('MatMul', [attend(g.op('MatMul', [query, keysT])), cache.value]);
  } else {
    cache = { key: headsFirst(k), value: headsFirst(v) }; // (B, H, T, D)
    const newKeysT = g.op('Transpose', [cache.key], { attributes: { perm: [0, 1, 3, 2] } }); // (B, H, D, T)
    const scores = g.op('Concat', [g.op('MatMul', [query, past.key]), g.op('MatMul', [query, newKeysT])], { attributes: { axis: 3 } }); // (B, H, T, P+T)
    const probabilities = attend(scores);
    const pastLength = g.op('Slice', [g.op('Shape', [past.key]), g.constInt64([3]), g.constInt64([4])]); // [P]
    const newLength = g.op('Slice', [g.op('Shape', [query]), g.constInt64([2]), g.constInt64([3])]); // [T]
    const splitSizes = g.op('Concat', [pastLength, newLength], { attributes: { axis: 0 } });
    const [pastProbabilities, newProbabilities] = g.opMulti('Split', [probabilities, splitSizes], 2, { attributes: { axis: 3 } });
    context = g.op('Add', [g.op('MatMul', [pastProbabilities, past.value]), g.op('MatMul', [newProbabilities, cache.value])]);
  }

  const merged = g.op('Reshape', [g.op('Transpose', [context], { attributes: { perm: [0, 2, 1, 3] } }), g.constInt64([0, 0, p.C])]);
  return { output: linear(g, merged, p.projWeight, p.projBias), cache };
}

/** Conv1D as GPT-2 has it: x (..., in) @ weight (in, out) + bias (out). */
function linear(g: GraphBuilder, x: Value, weight: Value, bias: Value): Value {
  return g.op('Add', [g.op('MatMul', [x, weight]), bias]);
}

function layerNorm(g: GraphBuilder, x: Value, scale: Value, bias: Value, epsilon: number): Value {
  return g.op('LayerNormalization', [x, scale, bias], { attributes: { axis: -1, epsilon: { float: epsilon } } });
}

/** gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in the form ONNX Runtime fuses. */
function gelu(g: GraphBuilder, x: Value): Value {
  const cube = g.op('Mul', [g.op('Mul', [x, x]), x]);
  const inner = g.op('Mul', [g.op('Add', [x, g.op('Mul', [cube, g.constFloat(0.044715)])]), g.constFloat(Math.sqrt(2 / Math.PI))]);
  const gate = g.op('Add', [g.op('Tanh', [inner]), g.constFloat(1)]);
  return g.op('Mul', [g.op('Mul', [x, g.constFloat(0.5)]), gate]);
}
