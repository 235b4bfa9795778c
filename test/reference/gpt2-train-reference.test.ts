import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeConfig } from '../../src/model/config.js';
import { ModelError } from '../../src/model/errors.js';
import { SeededRandom } from '../../src/model/random.js';
import { weightShapes } from '../../src/model/files/weights.js';
import { emptyReferenceCache, referenceForwardWithCache, referenceModel } from './gpt2-reference.js';
import {
  type AdamWSettings,
  type ReferenceWeights,
  type TrainBatch,
  adamWStep,
  emptyOptimizerState,
  float64Weights,
  isDecayed,
  referenceLossAndGradients,
  referenceTrainStep,
} from './gpt2-train-reference.js';
import { perturbedWeights } from '../helpers/perturbed-weights.js';

const SMALL = makeConfig({ n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 13, initializer_range: 0.4 });
const PAD = 12;

/**
 * Row 0 is full and repeats token 3 three times and 5 (also in row 1), so wte's gather
 * gradient accumulates; its first target does not count. Row 1 is right-padded, as training
 * batches are, with PAD, a token that is otherwise only a target, so wte[PAD] gets the head's
 * gradient alone. Under right padding causality already hides the padding from every real
 * query, so row 2 is left-padded to make the key mask matter (and its position 0 sees no key).
 */
const BATCH: TrainBatch = {
  inputIds: [
    [3, 5, 3, 7, 3, 1],
    [5, 2, 5, 9, PAD, PAD],
    [PAD, 4, 6, 4, 8, 10],
  ],
  attentionMask: [
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 1, 1],
  ],
  targets: [
    [5, 3, 7, 3, 1, 8],
    [2, 5, 9, 4, 0, 0],
    [0, 6, 4, 8, 10, PAD],
  ],
  lossMask: [
    [0, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 1, 1],
  ],
};


const WEIGHTS = perturbedWeights(SMALL, 7);

function rows(batch: TrainBatch, from: number, to: number, width: number): TrainBatch {
  const pick = (matrix: number[][]): number[][] => matrix.slice(from, to).map((row) => row.slice(0, width));
  return { inputIds: pick(batch.inputIds), attentionMask: pick(batch.attentionMask), targets: pick(batch.targets), lossMask: pick(batch.lossMask) };
}

const counted = (batch: TrainBatch): number => batch.lossMask.flat().reduce((sum, m) => sum + m, 0);

describe('float64 GPT-2 training reference: loss', () => {
  it('equals the masked mean of -log softmax over the inference reference logits', () => {
    const model = referenceModel(SMALL, WEIGHTS);
    const positions = BATCH.inputIds.map((row) => row.map((_, t) => t));
    const logits = referenceForwardWithCache(model, emptyReferenceCache(model, 3), BATCH.inputIds, BATCH.attentionMask, positions);
    let total = 0;
    BATCH.lossMask.forEach((row, b) => row.forEach((m, t) => {
      if (m === 0) return;
      const z = logits[b][t];
      const max = Math.max(...z);
      const logSumExp = max + Math.log(z.reduce((sum, value) => sum + Math.exp(value - max), 0));
      total += logSumExp - z[BATCH.targets[b][t]];
    }));
    const expected = total / counted(BATCH);
    const { loss } = referenceLossAndGradients(SMALL, WEIGHTS, BATCH);
    assert.ok(expected > 1, `loss ${expected} should be far from 0 with these weights`);
    assert.ok(Math.abs(loss - expected) < 1e-12, `loss ${loss} vs ${expected}`);
  });

  it('a right-padded row counts as its real tokens alone: loss and gradients combine by token counts', () => {
    const full = referenceLossAndGradients(SMALL, WEIGHTS, BATCH);
    const parts = [rows(BATCH, 0, 1, 6), rows(BATCH, 1, 2, 4), rows(BATCH, 2, 3, 6)];
    const separate = parts.map((batch) => ({ n: counted(batch), ...referenceLossAndGradients(SMALL, WEIGHTS, batch) }));
    const n = counted(BATCH);
    const combinedLoss = separate.reduce((sum, part) => sum + (part.loss * part.n) / n, 0);
    assert.ok(Math.abs(full.loss - combinedLoss) < 1e-12, `loss ${full.loss} vs ${combinedLoss}`);
    for (const [name, gradient] of full.gradients) {
      gradient.forEach((value, i) => {
        const combined = separate.reduce((sum, part) => sum + ((part.gradients.get(name) as Float64Array)[i] * part.n) / n, 0);
        assert.ok(Math.abs(value - combined) < 1e-12, `${name}[${i}]: ${value} vs ${combined}`);
      });
    }
  });

  it('an all-zero loss mask gives loss 0 and zero gradients, not NaN', () => {
    const batch = { ...BATCH, lossMask: BATCH.lossMask.map((row) => row.map(() => 0)) };
    const { loss, gradients } = referenceLossAndGradients(SMALL, WEIGHTS, batch);
    assert.equal(loss, 0);
    assert.deepEqual([...gradients.keys()], [...weightShapes(SMALL).keys()]);
    for (const [name, gradient] of gradients) assert.ok(gradient.every((value) => value === 0), `${name} is not all zero`);
  });

  it('rejects batches it cannot interpret', () => {
    const lossAtPadding = { ...BATCH, lossMask: [BATCH.lossMask[0], [1, 1, 1, 1, 1, 0], BATCH.lossMask[2]] };
    assert.throws(() => referenceLossAndGradients(SMALL, WEIGHTS, lossAtPadding), /lossMask\[1\]\[4\] is 1 at a padding position/);
    const shortRow = { ...BATCH, targets: [BATCH.targets[0], [2, 5], BATCH.targets[2]] };
    assert.throws(() => referenceLossAndGradients(SMALL, WEIGHTS, shortRow), /targets\[1\] has 2 columns, expected 6/);
    const badId = { ...BATCH, inputIds: [BATCH.inputIds[0], [5, 2, 13, 9, PAD, PAD], BATCH.inputIds[2]] };
    assert.throws(() => referenceLossAndGradients(SMALL, WEIGHTS, badId), /inputIds\[1\]\[2\] is 13/);
    const missing = new Map(WEIGHTS);
    missing.delete('h.1.ln_2.bias');
    assert.throws(() => referenceLossAndGradients(SMALL, missing, BATCH), (error: unknown) => error instanceof ModelError && error.code === 'WEIGHTS_MISMATCH' && /missing h\.1\.ln_2\.bias/.test(error.message));
  });
});

describe('float64 GPT-2 training reference: gradients', () => {
  // Five-point central difference, error O(h^4): with h = 1e-3 both truncation and rounding
  // stay far below the 1e-6 relative tolerance.
  function finiteDifference(weights: ReferenceWeights, name: string, index: number): number {
    const tensor = weights.get(name) as Float64Array;
    const original = tensor[index];
    const h = 1e-3;
    const lossAt = (delta: number): number => {
      tensor[index] = original + delta;
      return referenceLossAndGradients(SMALL, weights, BATCH).loss;
    };
    const derivative = (8 * (lossAt(h) - lossAt(-h)) - (lossAt(2 * h) - lossAt(-2 * h))) / (12 * h);
    tensor[index] = original;
    return derivative;
  }

  it('match finite differences on samples of every weight tensor', () => {
    const weights = float64Weights(SMALL, WEIGHTS);
    const { gradients } = referenceLossAndGradients(SMALL, weights, BATCH);
    const c = SMALL.n_embd;
    const random = new SeededRandom(11);
    // wte rows: 3 (gathered three times), 5 (in two rows), PAD (only padding as an input: head
    // part alone), 11 (never an input). wpe rows: 0, 5 (the last), 7 (past T: no gradient).
    const chosen = new Map<string, number[]>([
      ['wte.weight', [3, 5, PAD, 11].map((row) => row * c + Math.floor(random.next() * c))],
      ['wpe.weight', [0, 5, 7].map((row) => row * c + Math.floor(random.next() * c))],
    ]);
    // The key bias adds q . bk to every score of a query alike, which softmax ignores: its
    // gradient is exactly 0, so c_attn.bias is sampled in its query and value thirds.
    const sample = (name: string, length: number): number[] =>
      chosen.get(name) ??
      (name.endsWith('c_attn.bias') ? [0, 2, 2, 0].map((third) => third * c + Math.floor(random.next() * c)) : [0, 1, 2, 3].map(() => Math.floor(random.next() * length)));
    let checked = 0;
    for (const [name, gradient] of gradients) {
      if (name.endsWith('c_attn.bias')) {
        assert.ok(gradient.subarray(c, 2 * c).every((value) => Math.abs(value) < 1e-15), `${name}: key bias gradient is not 0`);
      }
      const indices = sample(name, gradient.length);
      for (const index of indices) {
        const analytic = gradient[index];
        const numeric = finiteDifference(weights, name, index);
        const scale = Math.max(Math.abs(analytic), Math.abs(numeric));
        if (scale < 1e-9) assert.ok(scale < 1e-12, `${name}[${index}]: ${analytic} vs ${numeric}`);
        else assert.ok(Math.abs(analytic - numeric) / scale < 1e-6, `${name}[${index}]: analytic ${analytic}, numeric ${numeric}`);
        checked++;
      }
      const largest = gradient.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
      assert.ok(largest > 1e-4, `${name}: gradient is ${largest} at most, too small for the check to mean anything`);
    }
    assert.equal(checked, 4 * (gradients.size - 1) + 3);
    const wpe = gradients.get('wpe.weight') as Float64Array;
    assert.ok(wpe.subarray(6 * c).every((value) => value === 0), 'positions past T get no gradient');
  });
});

describe('float64 GPT-2 training reference: AdamW', () => {
  const SETTINGS: AdamWSettings = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, clipNorm: 1 };
  const DECAYED = 'h.0.attn.c_attn.weight';
  const PLAIN = 'h.0.ln_1.bias';
  const pair = (a: number, b: number): Float64Array => Float64Array.from([a, b]);
  const close = (actual: number, expected: number, label: string): void =>
    assert.ok(Math.abs(actual - expected) < 1e-15, `${label}: ${actual} vs ${expected}`);

  it('decays only the 2-D matmul weights', () => {
    const decayed = [...weightShapes(SMALL).keys()].filter(isDecayed);
    assert.deepEqual(decayed, [0, 1].flatMap((l) => ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'].map((m) => `h.${l}.${m}.weight`)));
  });

  it('one clipped step, then one unclipped step with bias correction at t = 2', () => {
    const weights: ReferenceWeights = new Map([[DECAYED, pair(1, -2)], [PLAIN, pair(0.5, 0.25)]]);
    const zeros = (): ReferenceWeights => new Map([[DECAYED, pair(0, 0)], [PLAIN, pair(0, 0)]]);
    const state = { step: 0, m: zeros(), v: zeros() };

    // Step 1: |g| = |(3, 0, 0, -4)| = 5 > clipNorm 1, so g becomes (0.6, 0, 0, -0.8). At t = 1
    // the bias corrections give mhat = g and vhat = g^2, so the Adam step is lr g / (|g| + eps).
    const first = adamWStep(weights, new Map([[DECAYED, pair(3, 0)], [PLAIN, pair(0, -4)]]), state, SETTINGS);
    assert.equal(first.gradNorm, 5);
    assert.equal(first.state.step, 1);
    close(first.weights.get(DECAYED)![0], 1 * (1 - 0.1 * 0.01) - (0.1 * 0.6) / (0.6 + 1e-8), 'decayed[0]');
    close(first.weights.get(DECAYED)![1], -2 * (1 - 0.1 * 0.01), 'decayed[1]: decay alone');
    close(first.weights.get(PLAIN)![0], 0.5, 'plain[0]: untouched');
    close(first.weights.get(PLAIN)![1], 0.25 + (0.1 * 0.8) / (0.8 + 1e-8), 'plain[1]');
    close(first.state.m.get(DECAYED)![0], 0.1 * 0.6, 'm');
    close(first.state.v.get(PLAIN)![1], 0.001 * 0.64, 'v');
    assert.deepEqual([...weights.get(DECAYED)!], [1, -2], 'the inputs are not modified');
    assert.equal(state.step, 0);

    // Step 2: |g| = |(0.3, 0, 0, 0.4)| = 0.5 < clipNorm, not clipped.
    const second = adamWStep(first.weights, new Map([[DECAYED, pair(0.3, 0)], [PLAIN, pair(0, 0.4)]]), first.state, SETTINGS);
    assert.equal(second.gradNorm, 0.5);
    assert.equal(second.state.step, 2);
    const m2 = 0.9 * 0.06 + 0.1 * 0.3;
    const v2 = 0.999 * 0.00036 + 0.001 * 0.09;
    const adam2 = (0.1 * (m2 / 0.19)) / (Math.sqrt(v2 / (1 - 0.999 ** 2)) + 1e-8);
    close(second.weights.get(DECAYED)![0], first.weights.get(DECAYED)![0] * 0.999 - adam2, 'decayed[0] after 2 steps');
    const m2b = 0.9 * -0.08 + 0.1 * 0.4;
    const v2b = 0.999 * 0.00064 + 0.001 * 0.16;
    const adam2b = (0.1 * (m2b / 0.19)) / (Math.sqrt(v2b / (1 - 0.999 ** 2)) + 1e-8);
    close(second.weights.get(PLAIN)![1], first.weights.get(PLAIN)![1] - adam2b, 'plain[1] after 2 steps');
    assert.ok(Math.abs(adam2b - (0.1 * m2b) / Math.sqrt(v2b)) > 1e-3, 'bias correction at t = 1 would give another value');
  });

  it('rejects settings and state that do not fit', () => {
    const weights: ReferenceWeights = new Map([[PLAIN, pair(0, 0)]]);
    const state = { step: 0, m: new Map([[PLAIN, pair(0, 0)]]), v: new Map([[PLAIN, new Float64Array(3)]]) };
    assert.throws(() => adamWStep(weights, new Map([[PLAIN, pair(1, 1)]]), state, SETTINGS), /v of h\.0\.ln_1\.bias has 3 values, the weight 2/);
    assert.throws(() => adamWStep(weights, weights, state, { ...SETTINGS, beta2: 1 }), /beta2 1 must be in \[0, 1\)/);
  });

  it('referenceTrainStep lowers the loss on a fixed batch and reports the gradient norm', () => {
    const settings: AdamWSettings = { ...SETTINGS, lr: 0.01, clipNorm: 0 };
    let state = emptyOptimizerState(SMALL);
    let weights: ReferenceWeights = float64Weights(SMALL, WEIGHTS);
    const { loss: initialLoss, gradients } = referenceLossAndGradients(SMALL, weights, BATCH);
    const norm = Math.sqrt([...gradients.values()].reduce((sum, g) => sum + g.reduce((s, x) => s + x * x, 0), 0));
    const losses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const result = referenceTrainStep(SMALL, weights, state, BATCH, settings);
      if (i === 0) assert.ok(Math.abs(result.gradNorm - norm) < 1e-12 * norm, `gradNorm ${result.gradNorm} vs ${norm}`);
      losses.push(result.loss);
      ({ weights, state } = result);
    }
    assert.equal(losses[0], initialLoss);
    assert.equal(state.step, 5);
    assert.ok(losses.every((loss, i) => i === 0 || loss < losses[i - 1]), `losses ${losses.join(', ')}`);
  });
});
