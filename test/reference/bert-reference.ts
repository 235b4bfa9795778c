/**
 * An independent BertModel forward pass in plain float64 loops, written from the definition of
 * Hugging Face's BertModel (post-layer-norm blocks, erf GELU, absolute positions), against
 * which the tiny BERT's ONNX graph and the sentence embedder are checked. It shares nothing
 * with the graph builder but the weight names. One sequence at a time; padding keys (mask 0)
 * are skipped, so a padded row's real positions must equal the unpadded sequence's.
 */
import type { WeightMap } from '../../src/model/tensor.js';

export interface ReferenceBertShape {
  readonly hidden_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly intermediate_size: number;
  readonly layer_norm_eps: number;
}

/**
 * erf(x) to about 1e-14: its Maclaurin series for |x| < 3 (the largest term is under e^9, so
 * cancellation costs at most four digits), else the continued fraction of erfc (Lentz).
 */
export function erf(x: number): number {
  if (x < 0) return -erf(-x);
  if (x < 3) {
    let term = x;
    let sum = x;
    for (let n = 1; Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-x * x) / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return 1 - Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** Reads a weight as float64; `rows` x `columns` in row-major order. */
function matrix(weights: WeightMap, name: string): { data: Float64Array; rows: number; columns: number } {
  const tensor = weights.get(name);
  if (!tensor) throw new Error(`reference: missing weight ${name}`);
  const [rows, columns = 1] = tensor.dims;
  return { data: Float64Array.from(tensor.data), rows, columns };
}

/** nn.Linear: y = W x + b with W [out, in]. */
function linear(weights: WeightMap, prefix: string, x: Float64Array): Float64Array {
  const w = matrix(weights, `${prefix}.weight`);
  const b = matrix(weights, `${prefix}.bias`).data;
  const y = new Float64Array(w.rows);
  for (let o = 0; o < w.rows; o++) {
    let sum = b[o];
    for (let i = 0; i < w.columns; i++) sum += w.data[o * w.columns + i] * x[i];
    y[o] = sum;
  }
  return y;
}

function layerNorm(weights: WeightMap, prefix: string, x: Float64Array, epsilon: number): Float64Array {
  const gain = matrix(weights, `${prefix}.weight`).data;
  const shift = matrix(weights, `${prefix}.bias`).data;
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let variance = 0;
  for (const v of x) variance += (v - mean) ** 2;
  variance /= x.length;
  const scale = 1 / Math.sqrt(variance + epsilon);
  return x.map((v, i) => (v - mean) * scale * gain[i] + shift[i]);
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v + b[i]);
}

/**
 * last_hidden_state of one sequence: ids, token types and mask (T each) -> T rows of C.
 * Rows at padding positions are computed too (they attend to the real keys) but nothing
 * downstream should read them.
 */
export function referenceBertForward(
  shape: ReferenceBertShape,
  weights: WeightMap,
  ids: readonly number[],
  tokenTypes: readonly number[],
  mask: readonly number[],
): Float64Array[] {
  const C = shape.hidden_size;
  const H = shape.num_attention_heads;
  const D = C / H;
  const eps = shape.layer_norm_eps;
  const words = matrix(weights, 'embeddings.word_embeddings.weight');
  const positions = matrix(weights, 'embeddings.position_embeddings.weight');
  const types = matrix(weights, 'embeddings.token_type_embeddings.weight');
  const row = (m: { data: Float64Array; columns: number }, r: number) => m.data.subarray(r * m.columns, (r + 1) * m.columns);

  let x = ids.map((id, t) => layerNorm(weights, 'embeddings.LayerNorm', add(add(row(words, id), row(positions, t)), row(types, tokenTypes[t])), eps));
  for (let layer = 0; layer < shape.num_hidden_layers; layer++) {
    const p = `encoder.layer.${layer}.`;
    const q = x.map((v) => linear(weights, `${p}attention.self.query`, v));
    const k = x.map((v) => linear(weights, `${p}attention.self.key`, v));
    const v = x.map((vec) => linear(weights, `${p}attention.self.value`, vec));
    const context = x.map(() => new Float64Array(C));
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < x.length; i++) {
        const scores: number[] = [];
        for (let j = 0; j < x.length; j++) {
          if (mask[j] === 0) continue;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[i][h * D + d] * k[j][h * D + d];
          scores.push(dot / Math.sqrt(D));
        }
        const top = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - top));
        const total = exps.reduce((s, e) => s + e, 0);
        let slot = 0;
        for (let j = 0; j < x.length; j++) {
          if (mask[j] === 0) continue;
          const weight = exps[slot++] / total;
          for (let d = 0; d < D; d++) context[i][h * D + d] += weight * v[j][h * D + d];
        }
      }
    }
    x = x.map((vec, i) => layerNorm(weights, `${p}attention.output.LayerNorm`, add(vec, linear(weights, `${p}attention.output.dense`, context[i])), eps));
    x = x.map((vec) => {
      const inner = linear(weights, `${p}intermediate.dense`, vec).map(gelu);
      return layerNorm(weights, `${p}output.LayerNorm`, add(vec, linear(weights, `${p}output.dense`, inner)), eps);
    });
  }
  return x;
}

/** The mean of the real positions' rows, scaled to unit length: a sentence embedding. */
export function referenceMeanPooled(hidden: readonly Float64Array[], mask: readonly number[]): Float64Array {
  const sum = new Float64Array(hidden[0].length);
  let count = 0;
  hidden.forEach((vec, t) => {
    if (mask[t] === 0) return;
    count++;
    for (let c = 0; c < vec.length; c++) sum[c] += vec[c];
  });
  const mean = sum.map((s) => s / count);
  const norm = Math.sqrt(mean.reduce((s, v) => s + v * v, 0));
  return mean.map((v) => v / norm);
}
