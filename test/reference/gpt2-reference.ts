/**
 * An independent GPT-2 forward pass in plain float64 loops, written from the definition of
 * Hugging Face's GPT2LMHeadModel, against which the ONNX graphs are checked. It shares
 * nothing with the graph builder: only the config, the weight names and the tensor types
 * come from src/. Slow on purpose: one token vector at a time, no batching tricks.
 *
 * Masked keys are skipped. A query whose keys are all masked (a left-padding position) has
 * no defined attention output; here it is the zero vector, and the logits at padding
 * positions are meaningless and must not be compared.
 */
import { type Gpt2Config, headSize } from '../../src/model/config.js';
import type { WeightMap } from '../../src/model/tensor.js';
import { checkWeights, getWeight } from '../../src/model/files/weights.js';

interface ReferenceLayer {
  readonly ln1Weight: Float64Array; // (C)
  readonly ln1Bias: Float64Array; // (C)
  readonly attnWeight: Float64Array; // (C, 3C), Conv1D [in, out]
  readonly attnBias: Float64Array; // (3C)
  readonly attnProjWeight: Float64Array; // (C, C)
  readonly attnProjBias: Float64Array; // (C)
  readonly ln2Weight: Float64Array; // (C)
  readonly ln2Bias: Float64Array; // (C)
  readonly fcWeight: Float64Array; // (C, I)
  readonly fcBias: Float64Array; // (I)
  readonly fcProjWeight: Float64Array; // (I, C)
  readonly fcProjBias: Float64Array; // (C)
}

export interface ReferenceModel {
  readonly config: Gpt2Config;
  readonly wte: Float64Array; // (V, C), also the tied lm_head
  readonly wpe: Float64Array; // (P, C)
  readonly layers: readonly ReferenceLayer[];
  readonly lnfWeight: Float64Array; // (C)
  readonly lnfBias: Float64Array; // (C)
}

/**
 * Per-layer keys and values of every position seen so far, each a (C) row holding all heads
 * (head h in columns h*D..(h+1)*D). keys[layer][batch][position].
 */
export interface ReferenceCache {
  readonly batchSize: number;
  readonly keys: Float64Array[][][];
  readonly values: Float64Array[][][];
  length: number;
}

/** Checks the weights against the config and copies them to float64 once. */
export function referenceModel(config: Gpt2Config, weights: WeightMap): ReferenceModel {
  checkWeights(config, weights, 'reference weights');
  const f64 = (name: string): Float64Array => Float64Array.from(getWeight(weights, name).data);
  const layers: ReferenceLayer[] = [];
  for (let l = 0; l < config.n_layer; l++) {
    const p = `h.${l}.`;
    layers.push({
      ln1Weight: f64(`${p}ln_1.weight`),
      ln1Bias: f64(`${p}ln_1.bias`),
      attnWeight: f64(`${p}attn.c_attn.weight`),
      attnBias: f64(`${p}attn.c_attn.bias`),
      attnProjWeight: f64(`${p}attn.c_proj.weight`),
      attnProjBias: f64(`${p}attn.c_proj.bias`),
      ln2Weight: f64(`${p}ln_2.weight`),
      ln2Bias: f64(`${p}ln_2.bias`),
      fcWeight: f64(`${p}mlp.c_fc.weight`),
      fcBias: f64(`${p}mlp.c_fc.bias`),
      fcProjWeight: f64(`${p}mlp.c_proj.weight`),
      fcProjBias: f64(`${p}mlp.c_proj.bias`),
    });
  }
  return {
    config,
    wte: f64('wte.weight'),
    wpe: f64('wpe.weight'),
    layers,
    lnfWeight: f64('ln_f.weight'),
    lnfBias: f64('ln_f.bias'),
  };
}

/**
 * HF's position ids for left padding: cumsum(mask) - 1, with padding positions set to 1
 * (GPT2LMHeadModel.prepare_inputs_for_generation; Transformers.js does the same).
 */
export function positionIdsFromMask(attentionMask: number[][]): number[][] {
  return attentionMask.map((row) => {
    let seen = 0;
    return row.map((m) => {
      seen += m;
      return m === 0 ? 1 : seen - 1;
    });
  });
}

export function emptyReferenceCache(model: ReferenceModel, batchSize: number): ReferenceCache {
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  const perLayer = (): Float64Array[][] => Array.from({ length: batchSize }, () => []);
  return {
    batchSize,
    keys: model.layers.map(perLayer),
    values: model.layers.map(perLayer),
    length: 0,
  };
}

/** logits[b][t] = Float64Array(V) for every position, padding included (see the header). */
export function referenceForward(
  model: ReferenceModel,
  inputIds: number[][],
  attentionMask?: number[][],
): Float64Array[][] {
  const mask = attentionMask ?? inputIds.map((row) => row.map(() => 1));
  return referenceForwardWithCache(model, emptyReferenceCache(model, inputIds.length), inputIds, mask);
}

/**
 * Runs the new tokens after those already in the cache and appends their keys and values.
 * attentionMask is (B, past + T); positionIds is (B, T) and defaults to the last T columns
 * of positionIdsFromMask(attentionMask), as HF's generate does.
 */
export function referenceForwardWithCache(
  model: ReferenceModel,
  cache: ReferenceCache,
  inputIds: number[][],
  attentionMask: number[][],
  positionIds?: number[][],
): Float64Array[][] {
  const past = cache.length;
  const positions = positionIds ?? positionIdsFromMask(attentionMask).map((row) => row.slice(past));
  checkInputs(model.config, cache, inputIds, attentionMask, positions);
  const logits = inputIds.map((tokens, b) => sequenceForward(model, cache, b, tokens, positions[b], attentionMask[b]));
  cache.length = past + inputIds[0].length;
  return logits;
}

// Batch rows never interact, so each is run on its own: tokens (T), positions (T), maskRow (past + T).
function sequenceForward(
  model: ReferenceModel,
  cache: ReferenceCache,
  b: number,
  tokens: number[],
  positions: number[],
  maskRow: number[],
): Float64Array[] {
  const eps = model.config.layer_norm_epsilon;
  let x = tokens.map((token, t) => encoderForward(model, token, positions[t])); // (T, C)
  model.layers.forEach((layer, l) => {
    x = blockForward(model.config, layer, cache.keys[l][b], cache.values[l][b], x, maskRow);
  });
  return x.map((row) => lmHeadForward(model, layerNorm(row, model.lnfWeight, model.lnfBias, eps)));
}

// x (C) = wte[token] + wpe[position]
function encoderForward(model: ReferenceModel, token: number, position: number): Float64Array {
  const c = model.config.n_embd;
  const x = new Float64Array(c);
  for (let i = 0; i < c; i++) x[i] = model.wte[token * c + i] + model.wpe[position * c + i];
  return x;
}

/** x, weight, bias are (C); biased variance, as torch.nn.LayerNorm. */
export function layerNorm(x: Float64Array, weight: Float64Array, bias: Float64Array, eps: number): Float64Array {
  const c = x.length;
  let mean = 0;
  for (let i = 0; i < c; i++) mean += x[i];
  mean /= c;
  let variance = 0;
  for (let i = 0; i < c; i++) variance += (x[i] - mean) ** 2;
  variance /= c;
  const rstd = 1 / Math.sqrt(variance + eps);
  const out = new Float64Array(c);
  for (let i = 0; i < c; i++) out[i] = (x[i] - mean) * rstd * weight[i] + bias[i];
  return out;
}

/** Conv1D: x (IN), weight (IN, OUT) row-major, bias (OUT) -> x @ weight + bias (OUT). */
export function linear(x: Float64Array, weight: Float64Array, bias: Float64Array): Float64Array {
  const inSize = x.length;
  const outSize = bias.length;
  if (weight.length !== inSize * outSize) {
    throw new RangeError(`linear: weight holds ${weight.length} values, expected ${inSize} x ${outSize}`);
  }
  const out = Float64Array.from(bias);
  for (let i = 0; i < inSize; i++) {
    const xi = x[i];
    const row = i * outSize;
    for (let o = 0; o < outSize; o++) out[o] += xi * weight[row + o];
  }
  return out;
}

/** GPT-2's tanh approximation of GELU (HF "gelu_new", NewGELUActivation). */
export function geluNew(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

// x (T, C) -> (T, C); appends the T new keys and values to keys/values (past -> past + T).
function blockForward(
  config: Gpt2Config,
  layer: ReferenceLayer,
  keys: Float64Array[],
  values: Float64Array[],
  x: Float64Array[],
  maskRow: number[],
): Float64Array[] {
  const c = config.n_embd;
  const eps = config.layer_norm_epsilon;
  const past = keys.length;

  const qkv = x.map((row) => linear(layerNorm(row, layer.ln1Weight, layer.ln1Bias, eps), layer.attnWeight, layer.attnBias)); // (T, 3C)
  for (const row of qkv) {
    keys.push(row.slice(c, 2 * c));
    values.push(row.slice(2 * c, 3 * c));
  }
  const attended = qkv.map((row, t) => attentionForward(config, row.subarray(0, c), keys, values, maskRow, past + t)); // (T, C)
  const x1 = x.map((row, t) => add(row, linear(attended[t], layer.attnProjWeight, layer.attnProjBias)));

  return x1.map((row) => {
    const hidden = linear(layerNorm(row, layer.ln2Weight, layer.ln2Bias, eps), layer.fcWeight, layer.fcBias).map(geluNew); // (I)
    return add(row, linear(hidden, layer.fcProjWeight, layer.fcProjBias));
  });
}

/**
 * query (C) at cache index `queryIndex` attends to keys 0..queryIndex whose mask is 1, per
 * head, with scores scaled by 1/sqrt(D). Returns (C); zero when every key is masked.
 */
function attentionForward(
  config: Gpt2Config,
  query: Float64Array,
  keys: Float64Array[],
  values: Float64Array[],
  maskRow: number[],
  queryIndex: number,
): Float64Array {
  const d = headSize(config);
  const scale = 1 / Math.sqrt(d);
  const out = new Float64Array(config.n_embd);
  const visible: number[] = [];
  for (let j = 0; j <= queryIndex; j++) if (maskRow[j] !== 0) visible.push(j);
  if (visible.length === 0) return out;

  const scores = new Float64Array(visible.length);
  for (let h = 0; h < config.n_head; h++) {
    const offset = h * d;
    let max = -Infinity;
    visible.forEach((j, s) => {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += query[offset + i] * keys[j][offset + i];
      scores[s] = dot * scale;
      max = Math.max(max, scores[s]);
    });
    let sum = 0;
    for (let s = 0; s < scores.length; s++) {
      scores[s] = Math.exp(scores[s] - max);
      sum += scores[s];
    }
    visible.forEach((j, s) => {
      const p = scores[s] / sum;
      for (let i = 0; i < d; i++) out[offset + i] += p * values[j][offset + i];
    });
  }
  return out;
}

// x (C) -> logits (V) = x @ wte^T
function lmHeadForward(model: ReferenceModel, x: Float64Array): Float64Array {
  const c = model.config.n_embd;
  const logits = new Float64Array(model.config.vocab_size);
  for (let v = 0; v < logits.length; v++) {
    let dot = 0;
    for (let i = 0; i < c; i++) dot += x[i] * model.wte[v * c + i];
    logits[v] = dot;
  }
  return logits;
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

// Everything is checked before the cache is touched, so a rejected call leaves it as it was.
function checkInputs(
  config: Gpt2Config,
  cache: ReferenceCache,
  inputIds: number[][],
  attentionMask: number[][],
  positionIds: number[][],
): void {
  const batch = inputIds.length;
  const steps = inputIds[0]?.length ?? 0;
  const total = cache.length + steps;
  if (batch !== cache.batchSize) {
    throw new RangeError(`inputIds has ${batch} rows, the cache was made for ${cache.batchSize}`);
  }
  if (steps === 0) throw new RangeError('inputIds must hold at least one token per row');
  const rows = (name: string, matrix: number[][], width: number, valid: (value: number) => boolean, allowed: string): void => {
    if (matrix.length !== batch) throw new RangeError(`${name} has ${matrix.length} rows, expected ${batch}`);
    matrix.forEach((row, b) => {
      if (row.length !== width) throw new RangeError(`${name}[${b}] has ${row.length} columns, expected ${width}`);
      const bad = row.findIndex((value) => !valid(value));
      if (bad >= 0) throw new RangeError(`${name}[${b}][${bad}] is ${row[bad]}; allowed: ${allowed}`);
    });
  };
  const inRange = (limit: number) => (value: number) => Number.isInteger(value) && value >= 0 && value < limit;
  rows('inputIds', inputIds, steps, inRange(config.vocab_size), `integers in [0, ${config.vocab_size})`);
  rows('attentionMask', attentionMask, total, (value) => value === 0 || value === 1, '0 or 1 (past + new columns)');
  rows('positionIds', positionIds, steps, inRange(config.n_positions), `integers in [0, ${config.n_positions})`);
}
