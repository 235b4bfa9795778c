import { type Gpt2Config, headSize } from './config.js';
import { ModelError } from './errors.js';
import { GraphBuilder, type Graph, type Value } from './onnx/graph.js';
import { type QuantizedBits, type QuantizedMatrix, type WeightType, kBlocks, parseWeightType, quantizeMatrix, weightBits } from './quantize.js';
import type { WeightMap } from './tensor.js';
import { getWeight } from './files/weights.js';

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
 *   Here the cache lives in JavaScript (kv-cache.ts), past.N.key/value [B, H, P, D] (the
 *   keys' transpose folds into their MatMul), fed with no copy. Attention scores the past and
 *   the step's own tokens separately and joins only the small score matrices; the graph
 *   returns the step's keys and values, new.N.key/value [B, H, T, D], and the last position's
 *   logits [B, V] (a 512-token prompt needs one row of the 50257-wide head, not 512) after each
 *   row's repetition penalty (seen_ids, repetition_penalty), and
 *   beside them each row's SAMPLING_CANDIDATES best, candidates.logits [B, K] and
 *   candidates.ids [B, K] (TopK: best first, the lower id first on a tie), which is all most
 *   sampling settings need (token-picker.ts) and spares copying the whole rows out.
 *   With `weights` int8 or int4 (quantize.ts), the Conv1D projections and the head run as
 *   com.microsoft MatMulNBits over block-quantized copies; the embedding Gather keeps wte in fp32.
 */
export type Gpt2GraphKind = 'export' | 'runtime';

export interface Gpt2GraphOptions {
  /** The runtime graph's projection weights; the export graph is always float32. */
  readonly weights?: WeightType;
}

/** How many of each row's best logits the runtime graph hands back beside the whole row. */
export const SAMPLING_CANDIDATES = 64;

/** Added to the scores of masked keys; finite, so a row with every key masked stays finite. */
const MASKED_SCORE = -1e9;

export function buildGpt2Graph(config: Gpt2Config, weights: WeightMap, kind: Gpt2GraphKind, options: Gpt2GraphOptions = {}): Graph {
  const bits = weightBits(parseWeightType(options.weights ?? 'float32'));
  if (bits !== null && kind !== 'runtime') {
    throw new ModelError('OPTIONS_INVALID', `only the runtime graph takes quantized weights; the ${kind} graph stays float32 (the interchange format)`);
  }
  const g = new GraphBuilder(kind === 'export' ? 'gpt2' : 'gpt2_runtime');
  const H = config.n_head;
  const D = headSize(config);
  const V = config.vocab_size;
  const initializers = new Map<string, Value>();
  const weight = (name: string): Value => {
    const existing = initializers.get(name);
    if (existing) return existing;
    const value = g.weight(name, getWeight(weights, name));
    initializers.set(name, value);
    return value;
  };

  // inputs: ids and positions (B, T); attention_mask (B, P+T), 1 = attend, 0 = padding
  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const attentionMask = g.input('attention_mask', 'int64', ['batch_size', 'past_sequence_length + sequence_length']);
  const positionIds = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  const pastNames = (layer: number) =>
    kind === 'export'
      ? { key: `past_key_values.${layer}.key`, value: `past_key_values.${layer}.value` }
      : { key: `past.${layer}.key`, value: `past.${layer}.value` };
  const pastDims = ['batch_size', H, 'past_sequence_length', D];
  const past = Array.from({ length: config.n_layer }, (_, layer) => ({
    key: g.input(pastNames(layer).key, 'float32', pastDims),
    value: g.input(pastNames(layer).value, 'float32', pastDims),
  }));

  const caches: { key: Value; value: Value }[] = [];
  const attention: AttentionCore = (layer, heads, attend) => {
    const result = kind === 'export' ? attentionWithPresent(g, heads, past[layer], attend) : attentionWithSeparatePast(g, heads, past[layer], attend);
    caches.push(result.cache);
    return result.context;
  };
  const project = bits === null ? plainProjection(g, weight) : quantizedProjection(g, weights, weight, bits);
  // The export graph keeps to standard operators (Transformers.js and Optimum load it); tunebot's
  // own runs take FastGelu, one pass over the MLP's activations where the written-out form
  // takes nine (ONNX Runtime 1.30 does not fuse it).
  const activation = kind === 'export' ? gelu : fastGelu;
  const hidden = transformer(g, config, weight, project, { inputIds, positionIds, attentionMask }, attention, activation);

  g.scoped('head', () => {
    if (kind === 'export') {
      g.output(logitsForEveryPosition(g, config, weight, hidden, inputIds), 'logits', 'float32', ['batch_size', 'sequence_length', V]);
    } else {
      // the last position only: (B, T, C) -> (B, C) @ wte^T -> (B, V)
      const last = g.op('Slice', [hidden, g.constInt64([-1]), g.constInt64([Number.MAX_SAFE_INTEGER]), g.constInt64([1])]);
      const lastRow = g.op('Squeeze', [last, g.constInt64([1])]);
      const normed = layerNorm(g, lastRow, weight('ln_f.weight'), weight('ln_f.bias'), config.layer_norm_epsilon);
      const rawLogits =
        bits === null
          ? g.op('Gemm', [normed, weight('wte.weight')], { attributes: { transB: 1 } })
          : matMulNBits(g, normed, 'lm_head.weight', quantizeMatrix(getWeight(weights, 'wte.weight'), 'outputs-inputs', bits), null);
      const logits = penalizeSeenTokens(
        g,
        rawLogits,
        g.input('seen_ids', 'int64', ['batch_size', 'seen_length']),
        g.input('repetition_penalty', 'float32', ['batch_size']),
      );
      g.output(logits, 'logits', 'float32', ['batch_size', V]);
      const K = Math.min(SAMPLING_CANDIDATES, V);
      const [candidateLogits, candidateIds] = g.opMulti('TopK', [logits, g.constInt64([K])], 2, { attributes: { axis: -1, largest: 1, sorted: 1 } });
      g.output(candidateLogits, 'candidates.logits', 'float32', ['batch_size', K]);
      g.output(candidateIds, 'candidates.ids', 'int64', ['batch_size', K]);
    }
  });

  caches.forEach((cache, layer) => {
    const names = kind === 'export' ? { key: `present.${layer}.key`, value: `present.${layer}.value` } : { key: `new.${layer}.key`, value: `new.${layer}.value` };
    const dims = kind === 'export' ? ['batch_size', H, 'past_sequence_length + sequence_length', D] : ['batch_size', H, 'sequence_length', D];
    g.output(cache.key, names.key, 'float32', dims);
    g.output(cache.value, names.value, 'float32', dims);
  });
  return g.build();
}

/**
 * CTRL's repetition penalty, before TopK so that the candidates are the penalized row's best:
 * each row's seen tokens (seen_ids [B, S], any order, repeats allowed) have a positive logit
 * divided by the row's penalty (repetition_penalty [B], 1 for none) and a negative one
 * multiplied. A row with fewer seen tokens than S repeats one of them: a repeat writes the
 * same value again.
 */
function penalizeSeenTokens(g: GraphBuilder, logits: Value, seenIds: Value, penalty: Value): Value {
  const seen = g.op('GatherElements', [logits, seenIds], { attributes: { axis: 1 } }); // (B, S)
  const rowPenalty = g.op('Unsqueeze', [penalty, g.constInt64([1])]); // (B, 1)
  const lowered = g.op('Where', [g.op('Greater', [seen, g.constFloat(0)]), g.op('Div', [seen, rowPenalty]), g.op('Mul', [seen, rowPenalty])]);
  return g.op('ScatterElements', [logits, seenIds, lowered], { attributes: { axis: 1 } });
}

/** x @ W + b for the Conv1D weights under `prefix` (h.0.attn.c_attn, ...). LoRA supplies its own. */
export type Projection = (x: Value, prefix: string) => Value;

export function plainProjection(g: GraphBuilder, weight: (name: string) => Value): Projection {
  return (x, prefix) => linear(g, x, weight(`${prefix}.weight`), weight(`${prefix}.bias`));
}

/** x @ dequantize(quantize(W)) + b, the Conv1D weight quantized as the graph is built; the bias stays fp32. */
function quantizedProjection(g: GraphBuilder, weights: WeightMap, weight: (name: string) => Value, bits: QuantizedBits): Projection {
  return (x, prefix) => matMulNBits(g, x, `${prefix}.weight`, quantizeMatrix(getWeight(weights, `${prefix}.weight`), 'inputs-outputs', bits), weight(`${prefix}.bias`));
}

/**
 * MatMulNBits's accuracy_level: how A meets the weights. 0 (unset) computes in fp32; 4 quantizes
 * A to int8 per block too and multiplies in integers. Measured on ONNX Runtime 1.30's CPU kernel,
 * one row against a 768 x 50257 head: fp32 MatMul 6.6 ms; 8 bits 1.5 ms at level 4 but 574 ms at
 * level 0 (it dequantizes all of B on every run); 4 bits 1.1 ms at level 4, 2.6 ms at level 0.
 * Level 4 it is; its own error (A rounded to 8 bits per block) is within what the tests allow.
 */
export type MatMulAccuracy = 0 | 4;

/**
 * x (..., K) @ dequantize(matrix) (..., N) [+ bias]: ONNX Runtime's MatMulNBits, its constant
 * inputs stored as `name`.quantized / .scales / .zero_points.
 */
export function matMulNBits(g: GraphBuilder, x: Value, name: string, matrix: QuantizedMatrix, bias: Value | null, accuracy: MatMulAccuracy = 4): Value {
  const blocks = kBlocks(matrix.k, matrix.blockSize);
  const data = g.namedConstant(`${name}.quantized`, { type: 'uint8', dims: [matrix.n, blocks, (matrix.blockSize * matrix.bits) / 8], data: matrix.data });
  const scales = g.namedConstant(`${name}.scales`, { type: 'float32', dims: [matrix.n * blocks], data: matrix.scales });
  const zeroPoints = g.namedConstant(`${name}.zero_points`, { type: 'uint8', dims: [matrix.zeroPoints.length], data: matrix.zeroPoints });
  // Input 4 (g_idx) is deprecated; bias is input 5.
  const inputs = bias ? [x, data, scales, zeroPoints, null, bias] : [x, data, scales, zeroPoints];
  return g.op('MatMulNBits', inputs, {
    domain: 'com.microsoft',
    attributes: { K: matrix.k, N: matrix.n, bits: matrix.bits, block_size: matrix.blockSize, accuracy_level: accuracy },
  });
}

export interface TransformerInputs {
  readonly inputIds: Value; // (B, T) int64
  readonly positionIds: Value; // (B, T) int64
  readonly attentionMask: Value; // (B, P+T) int64
}

/** Query, keys and values of the step's own tokens, each (B, H, T, D). */
export interface AttentionHeads {
  readonly query: Value;
  readonly key: Value;
  readonly value: Value;
}

/** Softmax of scaled, masked scores (B, H, T, S) into probabilities. */
export type Attend = (scores: Value) => Value;

/** Attention's core for one layer: returns the context (B, H, T, D). Kinds differ only here. */
export type AttentionCore = (layer: number, heads: AttentionHeads, attend: Attend) => Value;

/** The MLP's activation: gelu_new, written out (below) or as one fused operator (fastGelu). */
export type Activation = (g: GraphBuilder, x: Value) => Value;

/**
 * Embeddings and the transformer blocks, shared by every graph: returns the last block's
 * output (B, T, C), before ln_f. `weight` gives a weight by its HF name (an initializer for
 * inference, a graph input for training); `project` computes the Conv1D layers.
 */
export function transformer(
  g: GraphBuilder,
  config: Gpt2Config,
  weight: (name: string) => Value,
  project: Projection,
  inputs: TransformerInputs,
  attention: AttentionCore,
  activation: Activation = gelu,
): Value {
  const C = config.n_embd;
  const H = config.n_head;
  const D = headSize(config);
  const epsilon = config.layer_norm_epsilon;
  const attentionBias = g.scoped('mask', () => buildAttentionBias(g, inputs.inputIds, inputs.attentionMask));
  const scale = g.constFloat(1 / Math.sqrt(D));
  const attend: Attend = (scores) =>
    g.op('Softmax', [g.op('Add', [g.op('Mul', [scores, scale]), attentionBias])], { attributes: { axis: -1 } });

  // x = wte[input_ids] + wpe[position_ids]: (B, T, C)
  let x = g.scoped('embed', () =>
    g.op('Add', [
      g.op('Gather', [weight('wte.weight'), inputs.inputIds], { attributes: { axis: 0 } }),
      g.op('Gather', [weight('wpe.weight'), inputs.positionIds], { attributes: { axis: 0 } }),
    ]),
  );
  for (let layer = 0; layer < config.n_layer; layer++) {
    const p = `h.${layer}.`;
    g.scoped(`h.${layer}`, () => {
      const normed1 = layerNorm(g, x, weight(`${p}ln_1.weight`), weight(`${p}ln_1.bias`), epsilon);
      const attended = g.scoped('attn', () => {
        const qkv = project(normed1, `${p}attn.c_attn`); // (B, T, 3C)
        const [q, k, v] = g.opMulti('Split', [qkv, g.constInt64([C, C, C])], 3, { attributes: { axis: 2 } });
        const headsShape = g.constInt64([0, 0, H, D]);
        const headsFirst = (t: Value) => g.op('Transpose', [g.op('Reshape', [t, headsShape])], { attributes: { perm: [0, 2, 1, 3] } }); // (B, H, T, D)
        const context = attention(layer, { query: headsFirst(q), key: headsFirst(k), value: headsFirst(v) }, attend);
        const merged = g.op('Reshape', [g.op('Transpose', [context], { attributes: { perm: [0, 2, 1, 3] } }), g.constInt64([0, 0, C])]);
        return project(merged, `${p}attn.c_proj`);
      });
      x = g.op('Add', [x, attended]);
      const normed2 = layerNorm(g, x, weight(`${p}ln_2.weight`), weight(`${p}ln_2.bias`), epsilon);
      const mlp = g.scoped('mlp', () => project(activation(g, project(normed2, `${p}mlp.c_fc`)), `${p}mlp.c_proj`));
      x = g.op('Add', [x, mlp]);
    });
  }
  return x;
}

/** ln_f, then logits for every position: (B, T, C) -> (B*T, C) @ wte^T -> (B, T, V). */
export function logitsForEveryPosition(g: GraphBuilder, config: Gpt2Config, weight: (name: string) => Value, hidden: Value, inputIds: Value): Value {
  const batchAndTime = g.op('Slice', [g.op('Shape', [inputIds]), g.constInt64([0]), g.constInt64([2])]);
  const shape = g.op('Concat', [batchAndTime, g.constInt64([config.vocab_size])], { attributes: { axis: 0 } });
  return g.op('Reshape', [logitRows(g, config, weight, hidden), shape]);
}

/** ln_f, then the logits of every position as rows: (B, T, C) -> (B*T, C) @ wte^T -> (B*T, V). */
export function logitRows(g: GraphBuilder, config: Gpt2Config, weight: (name: string) => Value, hidden: Value): Value {
  const normed = layerNorm(g, hidden, weight('ln_f.weight'), weight('ln_f.bias'), config.layer_norm_epsilon);
  const rows = g.op('Reshape', [normed, g.constInt64([-1, config.n_embd])]);
  return g.op('Gemm', [rows, weight('wte.weight')], { attributes: { transB: 1 } });
}

/** Attention over the step's own tokens only (training: no cache). */
export function attentionWithoutCache(g: GraphBuilder, heads: AttentionHeads, attend: Attend): Value {
  const keysT = g.op('Transpose', [heads.key], { attributes: { perm: [0, 1, 3, 2] } }); // (B, H, D, T)
  return g.op('MatMul', [attend(g.op('MatMul', [heads.query, keysT])), heads.value]);
}

/** Optimum's cache: present = Concat(past, new) along time, [B, H, P+T, D], handed back whole. */
function attentionWithPresent(g: GraphBuilder, heads: AttentionHeads, past: { key: Value; value: Value }, attend: Attend) {
  const cache = {
    key: g.op('Concat', [past.key, heads.key], { attributes: { axis: 2 } }),
    value: g.op('Concat', [past.value, heads.value], { attributes: { axis: 2 } }),
  };
  const keysT = g.op('Transpose', [cache.key], { attributes: { perm: [0, 1, 3, 2] } }); // (B, H, D, P+T)
  return { context: g.op('MatMul', [attend(g.op('MatMul', [heads.query, keysT])), cache.value]), cache };
}

/**
 * tunebot's cache: past keys and values (B, H, P, D) are scored and weighted where they lie (the
 * keys through a Transpose that ONNX Runtime folds into the MatMul), the step's own keys and
 * values separately; only the small score matrices are joined.
 */
function attentionWithSeparatePast(g: GraphBuilder, heads: AttentionHeads, past: { key: Value; value: Value }, attend: Attend) {
  const transposed = (keys: Value) => g.op('Transpose', [keys], { attributes: { perm: [0, 1, 3, 2] } }); // (B, H, D, length)
  const scores = g.op('Concat', [g.op('MatMul', [heads.query, transposed(past.key)]), g.op('MatMul', [heads.query, transposed(heads.key)])], { attributes: { axis: 3 } }); // (B, H, T, P+T)
  const probabilities = attend(scores);
  const pastLength = g.op('Slice', [g.op('Shape', [past.key]), g.constInt64([2]), g.constInt64([3])]); // [P]
  const newLength = g.op('Slice', [g.op('Shape', [heads.query]), g.constInt64([2]), g.constInt64([3])]); // [T]
  const splitSizes = g.op('Concat', [pastLength, newLength], { attributes: { axis: 0 } });
  const [pastProbabilities, newProbabilities] = g.opMulti('Split', [probabilities, splitSizes], 2, { attributes: { axis: 3 } });
  const context = g.op('Add', [g.op('MatMul', [pastProbabilities, past.value]), g.op('MatMul', [newProbabilities, heads.value])]);
  return { context, cache: { key: heads.key, value: heads.value } };
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

/** Conv1D as GPT-2 has it: x (..., in) @ weight (in, out) + bias (out). */
export function linear(g: GraphBuilder, x: Value, weight: Value, bias: Value): Value {
  return g.op('Add', [g.op('MatMul', [x, weight]), bias]);
}

export function layerNorm(g: GraphBuilder, x: Value, scale: Value, bias: Value, epsilon: number): Value {
  return g.op('LayerNormalization', [x, scale, bias], { attributes: { axis: -1, epsilon: { float: epsilon } } });
}

/** gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), written out in standard operators. */
export function gelu(g: GraphBuilder, x: Value): Value {
  const cube = g.op('Mul', [g.op('Mul', [x, x]), x]);
  const inner = g.op('Mul', [g.op('Add', [x, g.op('Mul', [cube, g.constFloat(0.044715)])]), g.constFloat(Math.sqrt(2 / Math.PI))]);
  const gate = g.op('Add', [g.op('Tanh', [inner]), g.constFloat(1)]);
  return g.op('Mul', [g.op('Mul', [x, g.constFloat(0.5)]), gate]);
}

/** gelu_new as ONNX Runtime's com.microsoft FastGelu (float only). */
export function fastGelu(g: GraphBuilder, x: Value): Value {
  return g.op('FastGelu', [x], { domain: 'com.microsoft' });
}
