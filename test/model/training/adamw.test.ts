import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { SeededRandom } from '../../../src/model/random.js';
import { ModelError } from '../../../src/model/errors.js';
import { adamwUpdate, allocateOptimizedArrays, optimizedTensor } from '../../../src/model/training/adamw.js';
import { type AdamWSettings, type ReferenceOptimizerState, adamWStep, isDecayed } from '../../reference/gpt2-train-reference.js';

/**
 * adamw.ts's float32 WebAssembly kernel against the float64 reference AdamW
 * (test/reference/gpt2-train-reference.ts): each step starts both from the same float32
 * state, so the difference is the kernel's float32 rounding alone, a few units in the last
 * place of each term. Lengths cover a partial group of four, a whole cache line and one more,
 * and many lines; gradients include zeros, tiny and large values.
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
  for (const length of [1, 3, 4, 17, 3 * 16384 + 5]) {
    it(`matches the float64 reference over three clipped steps, ${length} values`, () => {
      const random = new SeededRandom(length);
      const arrays = allocateOptimizedArrays([DECAYED, NOT_DECAYED].map((name) => ({ name, length })));
      const { parameters, moments, variances } = arrays;
      for (const parameter of parameters.values()) parameter.set(Float32Array.from({ length }, () => random.normal()));
      assert.ok(isDecayed(DECAYED) && !isDecayed(NOT_DECAYED));
      for (let step = 0; step < 3; step++) {
        const gradients = new Map([DECAYED, NOT_DECAYED].map((name) => [name, randomGradient(random, length)]));
        for (const [name, gradient] of gradients) arrays.gradients.get(name)!.set(gradient);
        const float64 = (tensors: ReadonlyMap<string, Float32Array>) => new Map([...tensors].map(([name, data]) => [name, Float64Array.from(data)]));
        const state: ReferenceOptimizerState = { step, m: float64(moments), v: float64(variances) };
        const expected = adamWStep(float64(parameters), float64(gradients), state, SETTINGS);
        const clip = expected.gradNorm > SETTINGS.clipNorm ? SETTINGS.clipNorm / expected.gradNorm : 1;
        if (length > 4) assert.ok(clip < 1, 'the gradients should be clipped');
        for (const name of [DECAYED, NOT_DECAYED]) {
          const before = { parameter: Float64Array.from(parameters.get(name)!), moment: Float64Array.from(moments.get(name)!) };
          const tensor = optimizedTensor(arrays, name, isDecayed(name));
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

  it('updates nothing past the tensor, and only arrays it allocated, one tensor at a time', () => {
    const arrays = allocateOptimizedArrays([{ name: 'a', length: 3 }, { name: 'b', length: 5 }]);
    const [a, b] = [optimizedTensor(arrays, 'a', false), optimizedTensor(arrays, 'b', false)];
    const backing = new Float32Array(a.parameter.buffer);
    backing.fill(5);
    for (const tensor of [a, b]) for (const array of [tensor.moment, tensor.variance, tensor.gradient]) array.fill(0);
    a.gradient.set([1, -1, 0]);
    const step = { learningRate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, gradientScale: 1, step: 1 };
    adamwUpdate(a, step);
    // At t = 1 the update is lr * g / (|g| + eps): a step of lr against the gradient's sign.
    assert.deepEqual(Array.from(a.parameter, (value) => Number(value.toFixed(5))), [4.9, 5.1, 5]);
    assert.ok(b.parameter.every((value) => value === 5), "the next tensor's parameters are untouched");
    assert.ok([...b.moment, ...b.variance].every((value) => value === 0), "and its moments");
    const refused = /AdamW: the arrays are not one tensor of allocateOptimizedArrays/;
    assert.throws(() => adamwUpdate({ ...a, gradient: new Float32Array(3) }, step), refused);
    assert.throws(() => adamwUpdate({ ...a, moment: b.moment }, step), refused);
    assert.throws(() => adamwUpdate({ ...a, parameter: a.parameter.subarray(1) }, step), refused);
    assert.throws(() => optimizedTensor(arrays, 'c', false), /AdamW: no tensor c/);
  });

  it('lays tensors past one memory out in several, each updated by its own kernel', () => {
    // Two tensors of 80M values are 2.6 GB with their moments and gradient: two banks. Pages
    // never written take no memory.
    const large = 80_000_000;
    const arrays = allocateOptimizedArrays([{ name: 'first', length: large }, { name: 'second', length: large }, { name: 'small', length: 6 }]);
    const [first, second, small] = ['first', 'second', 'small'].map((name) => optimizedTensor(arrays, name, false));
    assert.notEqual(first.parameter.buffer, second.parameter.buffer);
    assert.equal(second.parameter.buffer, small.parameter.buffer);
    assert.equal(second.gradient.length, large);
    small.parameter.fill(1);
    small.gradient.fill(2);
    adamwUpdate(small, { learningRate: 0.5, beta1: 0.9, beta2: 0.999, epsilon: 0, weightDecay: 0, gradientScale: 1, step: 1 });
    assert.deepEqual([...small.parameter], Array(6).fill(0.5));
  });

  it('says the optimizer state did not get its memory when the bank cannot be allocated', () => {
    // V8 caps WebAssembly memories at 16 pages (1 MiB) in this child; the tensor's bank needs 245.
    const script = [
      `const { allocateOptimizedArrays } = await import(${JSON.stringify(new URL('../../../src/model/training/adamw.ts', import.meta.url).href)});`,
      "try { allocateOptimizedArrays([{ name: 'w', length: 1_000_000 }]); console.log('allocated'); }",
      'catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })); }',
    ].join('\n');
    const output = execFileSync(process.execPath, ['--wasm-max-mem-pages=16', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(output), { code: 'OUT_OF_MEMORY', message: "the optimizer's state could not be given 0.02 GB of memory" });
  });

  it('refuses a tensor larger than one memory holds, before allocating any', () => {
    assert.throws(
      () => allocateOptimizedArrays([{ name: 'wte', length: 2 ** 27 }]),
      (error) => error instanceof ModelError && error.code === 'OPTIONS_INVALID' && /wte: 134217728 values are more than one optimizer bank holds/.test(error.message),
    );
  });
});
