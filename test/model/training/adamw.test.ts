import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRandom } from '../../../src/model/random.js';
import { adamwUpdate } from '../../../src/model/training/adamw.js';
import { CHUNK } from '../../../src/model/training/adamw-kernel.js';
import { type AdamWSettings, type ReferenceOptimizerState, adamWStep, isDecayed } from '../../reference/gpt2-train-reference.js';

/**
 * adamw.ts's float32 WebAssembly kernel against the float64 reference AdamW
 * (test/reference/gpt2-train-reference.ts): each step starts both from the same float32
 * state, so the difference is the kernel's float32 rounding alone, a few units in the last
 * place of each term. Lengths cover a partial group of four, a chunk boundary and several
 * chunks; gradients include zeros, tiny and large values.
 */

const DECAYED = 'h.0.mlp.c_fc.weight';
const NOT_DECAYED = 'h.0.ln_1.bias';
const SETTINGS: AdamWSettings = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, clipNorm: 0.5 };
/** float32's unit roundoff. */
const ROUNDOFF = 2 ** -24;

function randomGradient(random: SeededRandom, length: number): Float32Array {
  return Float32Array.from({ length }, (_, i) => {
    if (i % 7 === 0) return 0;
    const magnitude = 10 ** (-12 + 14 * random.next());
    return (random.next() < 0.5 ? -1 : 1) * magnitude;
  });
}

describe('adamwUpdate (float32 kernel)', () => {
  for (const length of [1, 3, 4, CHUNK + 2, 3 * CHUNK + 5]) {
    it(`matches the float64 reference over three clipped steps, ${length} values`, () => {
      const random = new SeededRandom(length);
      const parameters = new Map([DECAYED, NOT_DECAYED].map((name) => [name, Float32Array.from({ length }, () => random.normal())]));
      const moments = new Map([DECAYED, NOT_DECAYED].map((name) => [name, new Float32Array(length)]));
      const variances = new Map([DECAYED, NOT_DECAYED].map((name) => [name, new Float32Array(length)]));
      assert.ok(isDecayed(DECAYED) && !isDecayed(NOT_DECAYED));
      for (let step = 0; step < 3; step++) {
        const gradients = new Map([DECAYED, NOT_DECAYED].map((name) => [name, randomGradient(random, length)]));
        const float64 = (tensors: Map<string, Float32Array>) => new Map([...tensors].map(([name, data]) => [name, Float64Array.from(data)]));
        const state: ReferenceOptimizerState = { step, m: float64(moments), v: float64(variances) };
        const expected = adamWStep(float64(parameters), float64(gradients), state, SETTINGS);
        const clip = expected.gradNorm > SETTINGS.clipNorm ? SETTINGS.clipNorm / expected.gradNorm : 1;
        if (length > 4) assert.ok(clip < 1, 'the gradients should be clipped');
        for (const name of [DECAYED, NOT_DECAYED]) {
          const before = { parameter: Float64Array.from(parameters.get(name)!), moment: Float64Array.from(moments.get(name)!) };
          const tensor = {
            parameter: parameters.get(name)!, moment: moments.get(name)!, variance: variances.get(name)!, gradient: gradients.get(name)!,
            decay: isDecayed(name),
          };
          adamwUpdate(tensor, {
            learningRate: SETTINGS.lr, beta1: SETTINGS.beta1, beta2: SETTINGS.beta2, epsilon: SETTINGS.eps,
            weightDecay: SETTINGS.weightDecay, gradientScale: clip, step: step + 1,
          });
          const [m, v, p] = [expected.state.m.get(name)!, expected.state.v.get(name)!, expected.weights.get(name)!];
          for (let i = 0; i < length; i++) {
            const g = clip * gradients.get(name)![i];
            // Each value may be off by a few roundings of the terms that make it.
            const momentTolerance = 4 * ROUNDOFF * (SETTINGS.beta1 * Math.abs(before.moment[i]) + (1 - SETTINGS.beta1) * Math.abs(g));
            const varianceTolerance = 6 * ROUNDOFF * v[i];
            const update = Math.abs(before.parameter[i] * (isDecayed(name) ? 1 - SETTINGS.lr * SETTINGS.weightDecay : 1) - p[i]);
            const parameterTolerance = 4 * ROUNDOFF * Math.abs(before.parameter[i]) + 16 * ROUNDOFF * update;
            const where = `${name}[${i}] step ${step + 1}`;
            assert.ok(Math.abs(tensor.moment[i] - m[i]) <= momentTolerance, `${where} m ${tensor.moment[i]} vs ${m[i]}`);
            assert.ok(Math.abs(tensor.variance[i] - v[i]) <= varianceTolerance, `${where} v ${tensor.variance[i]} vs ${v[i]}`);
            assert.ok(Math.abs(tensor.parameter[i] - p[i]) <= parameterTolerance, `${where} p ${tensor.parameter[i]} vs ${p[i]}`);
          }
        }
      }
    });
  }

  it('updates nothing past the tensor and refuses arrays of different lengths', () => {
    const backing = new Float32Array(8).fill(5);
    const tensor = {
      parameter: backing.subarray(0, 3), moment: new Float32Array(3), variance: new Float32Array(3), gradient: Float32Array.of(1, -1, 0), decay: false,
    };
    const step = { learningRate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, gradientScale: 1, step: 1 };
    adamwUpdate(tensor, step);
    // At t = 1 the update is lr * g / (|g| + eps): a step of lr against the gradient's sign.
    assert.deepEqual(Array.from(backing, (value) => Number(value.toFixed(5))), [4.9, 5.1, 5, 5, 5, 5, 5, 5]);
    assert.throws(() => adamwUpdate({ ...tensor, gradient: new Float32Array(4) }, step), /AdamW: arrays of 4 and 3 values/);
  });
});
