import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Gpt2Config, makeConfig, presetConfig } from '../../src/model/config.js';
import type { WeightMap } from '../../src/model/tensor.js';
import { getWeight } from '../../src/model/files/weights.js';
import {
  emptyReferenceCache,
  geluNew,
  layerNorm,
  linear,
  positionIdsFromMask,
  referenceForward,
  referenceForwardWithCache,
  referenceModel,
} from './gpt2-reference.js';
import { perturbedWeights } from '../helpers/perturbed-weights.js';

const SMALL = makeConfig({ n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 11, initializer_range: 0.5 });


function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, label: string): void {
  const diff = maxAbsDiff(actual, expected);
  assert.ok(diff <= tolerance, `${label}: max |diff| ${diff} > ${tolerance}`);
}

// A second forward, structured differently: whole-sequence matrices, an explicit mask matrix,
// heads as column blocks. Shares no code with the reference. tokens, mask (T) -> logits (T, V).
type Matrix = number[][];
const matmul = (a: Matrix, b: Matrix): Matrix =>
  a.map((row) => b[0].map((_, j) => row.reduce((sum, aik, k) => sum + aik * b[k][j], 0)));
const transpose = (m: Matrix): Matrix => m[0].map((_, j) => m.map((row) => row[j]));
const plus = (a: Matrix, b: Matrix): Matrix => a.map((row, i) => row.map((v, j) => v + b[i][j]));
const addBias = (m: Matrix, bias: number[]): Matrix => m.map((row) => row.map((v, j) => v + bias[j]));
const columns = (m: Matrix, from: number, to: number): Matrix => m.map((row) => row.slice(from, to));

function matrixForward(config: Gpt2Config, weights: WeightMap, tokens: number[], mask: number[]): Matrix {
  const vector = (name: string): number[] => Array.from(getWeight(weights, name).data);
  const matrix = (name: string): Matrix => {
    const { dims, data } = getWeight(weights, name);
    return Array.from({ length: dims[0] }, (_, r) => Array.from(data.subarray(r * dims[1], (r + 1) * dims[1])));
  };
  const norm = (m: Matrix, prefix: string): Matrix => {
    const gain = vector(`${prefix}.weight`);
    const shift = vector(`${prefix}.bias`);
    return m.map((row) => {
      const mean = row.reduce((s, v) => s + v, 0) / row.length;
      const variance = row.reduce((s, v) => s + (v - mean) * (v - mean), 0) / row.length;
      return row.map((v, j) => ((v - mean) / Math.sqrt(variance + config.layer_norm_epsilon)) * gain[j] + shift[j]);
    });
  };
  const gelu = (x: number): number => 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
  const c = config.n_embd;
  const d = c / config.n_head;
  const allowed = mask.map((_, i) => mask.map((m, j) => j <= i && m === 1));
  let real = 0;
  const positions = mask.map((m) => (m === 1 ? real++ : 1));
  const wte = matrix('wte.weight');
  const wpe = matrix('wpe.weight');
  let x: Matrix = tokens.map((token, t) => wte[token].map((v, j) => v + wpe[positions[t]][j]));
  for (let l = 0; l < config.n_layer; l++) {
    const p = `h.${l}.`;
    const qkv = addBias(matmul(norm(x, `${p}ln_1`), matrix(`${p}attn.c_attn.weight`)), vector(`${p}attn.c_attn.bias`));
    const heads: Matrix[] = [];
    for (let h = 0; h < config.n_head; h++) {
      const q = columns(qkv, h * d, (h + 1) * d);
      const k = columns(qkv, c + h * d, c + (h + 1) * d);
      const v = columns(qkv, 2 * c + h * d, 2 * c + (h + 1) * d);
      const scores = matmul(q, transpose(k)).map((row) => row.map((s) => s / Math.sqrt(d)));
      const probs = scores.map((row, i) => {
        const max = Math.max(...row.filter((_, j) => allowed[i][j]));
        const e = row.map((s, j) => (allowed[i][j] ? Math.exp(s - max) : 0));
        const sum = e.reduce((a, b) => a + b, 0);
        return e.map((v) => (sum > 0 ? v / sum : 0));
      });
      heads.push(matmul(probs, v));
    }
    const attended = heads.reduce((acc, head) => acc.map((row, i) => [...row, ...head[i]]), x.map(() => [] as number[]));
    x = plus(x, addBias(matmul(attended, matrix(`${p}attn.c_proj.weight`)), vector(`${p}attn.c_proj.bias`)));
    const hidden = addBias(matmul(norm(x, `${p}ln_2`), matrix(`${p}mlp.c_fc.weight`)), vector(`${p}mlp.c_fc.bias`));
    const activated = hidden.map((row) => row.map(gelu));
    x = plus(x, addBias(matmul(activated, matrix(`${p}mlp.c_proj.weight`)), vector(`${p}mlp.c_proj.bias`)));
  }
  return matmul(norm(x, 'ln_f'), transpose(wte));
}

describe('reference helpers', () => {
  it('gelu_new matches known values', () => {
    const known: Array<[number, number]> = [
      [0, 0],
      [1, 0.8411919906082768],
      [-1, -0.15880800939172324],
      [2, 1.954597694087775],
      [-3, -0.0036373920817729943],
      [0.5, 0.34571400982514394],
    ];
    for (const [x, expected] of known) assert.ok(Math.abs(geluNew(x) - expected) < 1e-15, `gelu_new(${x}) = ${geluNew(x)}`);
  });

  it('layerNorm uses the biased variance, eps, gain and bias', () => {
    const x = Float64Array.of(1, 2, 3, 4);
    const plain = layerNorm(x, Float64Array.of(1, 1, 1, 1), new Float64Array(4), 0);
    assertClose(plain, [-1.3416407864998738, -0.4472135954999579, 0.4472135954999579, 1.3416407864998738], 1e-15, 'plain');
    const affine = layerNorm(x, Float64Array.of(2, 1, 0.5, 1), Float64Array.of(0, 1, 0, -1), 1e-5);
    assertClose(affine, [-2.6832708399378538, 0.552788193343691, 0.2236059033281545, 0.3416354199689269], 1e-15, 'affine');
  });

  it('linear is Conv1D: weight stored [in, out]', () => {
    const out = linear(Float64Array.of(1, 2), Float64Array.of(1, 2, 3, 4, 5, 6), Float64Array.of(0.5, 0, -0.5));
    assert.deepEqual(Array.from(out), [9.5, 12, 14.5]);
  });

  it('position ids follow HF left padding: cumsum - 1, padding at 1', () => {
    assert.deepEqual(positionIdsFromMask([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 0, 1]]), [
      [1, 1, 0, 1, 2],
      [0, 1, 2, 3, 4],
      [1, 0, 1, 1, 2],
    ]);
  });
});

describe('referenceForward', () => {
  it('matches a hand computation on a 2-wide, 1-head, 1-layer model', () => {
    const config = makeConfig({ n_layer: 1, n_head: 1, n_embd: 2, n_positions: 4, vocab_size: 3, n_inner: 2 });
    const eps = config.layer_norm_epsilon;
    // Dyadic values, exact in float32, so the float64 hand computation sees the stored weights.
    const rows = {
      wte: [[1, 0], [0, 2], [-1, 1]],
      wpe: [[0, 0], [2, -0.5], [0.25, 0.125], [0, 0]],
      attn: [[1, 0, 0.5, 1, 1, 0], [0, 1, -1, 0.5, 0.5, 2]],
      attnProj: [[0.5, -1], [1, 0.25]],
      fc: [[1, -2], [0.5, 1]],
      fcProj: [[0.375, 0.75], [-0.625, 0.25]],
    };
    const vectors = {
      ln1: [[1.5, 0.5], [0.125, -0.25]],
      attnBias: [0, 0.125, 0.25, 0, -0.125, 0.375],
      attnProjBias: [0.0625, -0.0625],
      ln2: [[0.875, 1.25], [0, 0.375]],
      fcBias: [0.125, -0.125],
      fcProjBias: [0.03125, 0],
      lnf: [[1, 2], [0.5, -0.5]],
    };
    for (const value of [...Object.values(rows), ...Object.values(vectors)].flat(2)) assert.equal(Math.fround(value), value);
    const tensor = (dims: number[], values: number[]) => ({ dims, data: Float32Array.from(values) });
    const weights: WeightMap = new Map([
      ['wte.weight', tensor([3, 2], rows.wte.flat())],
      ['wpe.weight', tensor([4, 2], rows.wpe.flat())],
      ['h.0.ln_1.weight', tensor([2], vectors.ln1[0])],
      ['h.0.ln_1.bias', tensor([2], vectors.ln1[1])],
      ['h.0.attn.c_attn.weight', tensor([2, 6], rows.attn.flat())],
      ['h.0.attn.c_attn.bias', tensor([6], vectors.attnBias)],
      ['h.0.attn.c_proj.weight', tensor([2, 2], rows.attnProj.flat())],
      ['h.0.attn.c_proj.bias', tensor([2], vectors.attnProjBias)],
      ['h.0.ln_2.weight', tensor([2], vectors.ln2[0])],
      ['h.0.ln_2.bias', tensor([2], vectors.ln2[1])],
      ['h.0.mlp.c_fc.weight', tensor([2, 2], rows.fc.flat())],
      ['h.0.mlp.c_fc.bias', tensor([2], vectors.fcBias)],
      ['h.0.mlp.c_proj.weight', tensor([2, 2], rows.fcProj.flat())],
      ['h.0.mlp.c_proj.bias', tensor([2], vectors.fcProjBias)],
      ['ln_f.weight', tensor([2], vectors.lnf[0])],
      ['ln_f.bias', tensor([2], vectors.lnf[1])],
    ]);
    type Pair = [number, number];
    // With two features, layer norm is +-d / sqrt(d^2 + eps) for d = (a - b) / 2.
    const norm2 = ([a, b]: Pair, [gain, shift]: number[][]): Pair => {
      const n = (a - b) / 2 / Math.sqrt(((a - b) / 2) ** 2 + eps);
      return [n * gain[0] + shift[0], -n * gain[1] + shift[1]];
    };
    const affine = ([a, b]: Pair, w: number[][], bias: number[]): number[] => bias.map((bj, j) => a * w[0][j] + b * w[1][j] + bj);
    const gelu = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    const add = ([a, b]: Pair, [c, d]: number[]): Pair => [a + c, b + d];

    const tokens = [1, 2];
    const x: Pair[] = tokens.map((token, t) => add(rows.wte[token] as Pair, rows.wpe[t]));
    const qkv = x.map((xt) => affine(norm2(xt, vectors.ln1), rows.attn, vectors.attnBias));
    const [q1, k0, k1, v0, v1] = [qkv[1].slice(0, 2), qkv[0].slice(2, 4), qkv[1].slice(2, 4), qkv[0].slice(4), qkv[1].slice(4)];
    // Position 0 sees only itself; position 1 weighs two keys, a softmax of two is a sigmoid.
    const s0 = (q1[0] * k0[0] + q1[1] * k0[1]) / Math.SQRT2;
    const s1 = (q1[0] * k1[0] + q1[1] * k1[1]) / Math.SQRT2;
    const p1 = 1 / (1 + Math.exp(s0 - s1));
    const attended: Pair[] = [
      [v0[0], v0[1]],
      [(1 - p1) * v0[0] + p1 * v1[0], (1 - p1) * v0[1] + p1 * v1[1]],
    ];
    const x1 = x.map((xt, t) => add(xt, affine(attended[t], rows.attnProj, vectors.attnProjBias)));
    const x2 = x1.map((xt) => {
      const hidden = affine(norm2(xt, vectors.ln2), rows.fc, vectors.fcBias).map(gelu) as Pair;
      return add(xt, affine(hidden, rows.fcProj, vectors.fcProjBias));
    });
    const expected = x2.map((xt) => {
      const [a, b] = norm2(xt, vectors.lnf);
      return rows.wte.map(([e0, e1]) => a * e0 + b * e1);
    });

    const logits = referenceForward(referenceModel(config, weights), [tokens]);
    assert.equal(logits[0].length, 2);
    logits[0].forEach((row, t) => assertClose(row, expected[t], 1e-12, `position ${t}`));
  });

  it('matches a matrix-structured forward on a padded batch', () => {
    const weights = perturbedWeights(SMALL, 7);
    const model = referenceModel(SMALL, weights);
    const inputIds = [[0, 0, 3, 7, 1, 9], [4, 4, 2, 10, 0, 5]];
    const mask = [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]];
    const logits = referenceForward(model, inputIds, mask);
    inputIds.forEach((tokens, b) => {
      const expected = matrixForward(SMALL, weights, tokens, mask[b]);
      mask[b].forEach((m, t) => {
        if (m === 1) assertClose(logits[b][t], expected[t], 1e-12, `row ${b} position ${t}`);
      });
    });
  });

  it('gives a left-padded row the logits it has alone, unpadded', () => {
    const model = referenceModel(SMALL, perturbedWeights(SMALL, 11));
    const padded = referenceForward(model, [[10, 0, 5, 3, 8, 2, 6], [1, 2, 3, 4, 5, 6, 7]], [
      [0, 0, 0, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 1, 1],
    ]);
    const alone = referenceForward(model, [[3, 8, 2, 6]]);
    const other = referenceForward(model, [[1, 2, 3, 4, 5, 6, 7]]);
    alone[0].forEach((row, t) => assertClose(padded[0][3 + t], row, 1e-10, `padded position ${3 + t}`));
    other[0].forEach((row, t) => assertClose(padded[1][t], row, 1e-10, `unpadded row position ${t}`));
  });

  it('is causal: a later token does not change earlier logits', () => {
    const model = referenceModel(SMALL, perturbedWeights(SMALL, 3));
    const [before] = referenceForward(model, [[1, 4, 9, 2, 7, 5]]);
    const [after] = referenceForward(model, [[1, 4, 9, 8, 7, 5]]);
    for (let t = 0; t < 3; t++) assert.deepEqual(after[t], before[t], `position ${t} changed`);
    for (let t = 3; t < 6; t++) assert.ok(maxAbsDiff(after[t], before[t]) > 1e-3, `position ${t} ignored the change`);
  });

  it('rejects malformed inputs and leaves the cache untouched', () => {
    const model = referenceModel(SMALL, perturbedWeights(SMALL, 5));
    const cache = emptyReferenceCache(model, 1);
    referenceForwardWithCache(model, cache, [[1, 2]], [[1, 1]]);
    assert.throws(() => referenceForwardWithCache(model, cache, [[11]], [[1, 1, 1]]), /inputIds\[0\]\[0\] is 11/);
    assert.throws(() => referenceForwardWithCache(model, cache, [[3]], [[1, 1]]), /attentionMask\[0\] has 2 columns, expected 3/);
    assert.throws(() => referenceForwardWithCache(model, cache, [[3], [4]], [[1, 1, 1], [1, 1, 1]]), /cache was made for 1/);
    assert.throws(() => referenceForwardWithCache(model, cache, [[3]], [[1, 1, 1]], [[16]]), /positionIds\[0\]\[0\] is 16/);
    assert.equal(cache.length, 2);
    assert.equal(cache.keys[0][0].length, 2);
  });
});

describe('referenceForwardWithCache', () => {
  const weights = perturbedWeights(SMALL, 21);
  const model = referenceModel(SMALL, weights);
  const inputIds = [[6, 6, 1, 9, 4, 4, 0, 10, 3], [2, 7, 5, 1, 8, 3, 3, 6, 9]];
  const mask = [[0, 0, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1]];
  const full = referenceForward(model, inputIds, mask);

  for (const chunks of [[3, 1, 1, 1, 1, 1, 1], [4, 2, 3], [1, 1, 1, 1, 1, 1, 1, 1, 1]]) {
    it(`prefill + decode in chunks ${chunks.join('+')} equals the full forward`, () => {
      const cache = emptyReferenceCache(model, 2);
      let start = 0;
      for (const size of chunks) {
        const end = start + size;
        const step = referenceForwardWithCache(
          model,
          cache,
          inputIds.map((row) => row.slice(start, end)),
          mask.map((row) => row.slice(0, end)),
        );
        assert.equal(cache.length, end);
        for (let b = 0; b < 2; b++) {
          for (let t = start; t < end; t++) {
            if (mask[b][t] === 1) assertClose(step[b][t - start], full[b][t], 1e-10, `row ${b} position ${t}`);
          }
        }
        start = end;
      }
    });
  }

  it('agrees with the full forward at GPT-2\'s real vocabulary size (tiny preset)', () => {
    const tiny = presetConfig('tiny');
    const tinyModel = referenceModel(tiny, perturbedWeights(tiny, 2));
    const tokens = [464, 2068, 7586, 21831, 50256];
    const full = referenceForward(tinyModel, [tokens]);
    assert.equal(full[0][0].length, tiny.vocab_size);
    const cache = emptyReferenceCache(tinyModel, 1);
    referenceForwardWithCache(tinyModel, cache, [tokens.slice(0, 3)], [[1, 1, 1]]);
    for (let t = 3; t < tokens.length; t++) {
      const [[step]] = referenceForwardWithCache(tinyModel, cache, [[tokens[t]]], [tokens.slice(0, t + 1).map(() => 1)]);
      assertClose(step, full[0][t], 1e-10, `position ${t}`);
    }
  });

  it('uses explicit position ids when given', () => {
    // Positions 4..6 in this model are positions 0..2 in one whose wpe rows are shifted by 4.
    const { dims, data } = getWeight(weights, 'wpe.weight');
    const shiftedWeights: WeightMap = new Map(weights);
    shiftedWeights.set('wpe.weight', { dims, data: Float32Array.from(data, (_, i) => data[(i + 4 * SMALL.n_embd) % data.length]) });
    const [explicit] = referenceForwardWithCache(model, emptyReferenceCache(model, 1), [[2, 7, 5]], [[1, 1, 1]], [[4, 5, 6]]);
    const [shifted] = referenceForward(referenceModel(SMALL, shiftedWeights), [[2, 7, 5]]);
    const [plain] = referenceForward(model, [[2, 7, 5]]);
    explicit.forEach((row, t) => assertClose(row, shifted[t], 1e-12, `position ${t + 4}`));
    assert.ok(maxAbsDiff(explicit[2], plain[2]) > 1e-3, 'position ids were ignored');
  });
});
