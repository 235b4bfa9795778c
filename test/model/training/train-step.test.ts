import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { silentLogger } from '../../../src/log.js';
import { ModelError } from '../../../src/model/errors.js';
import { type Gpt2Config, END_OF_TEXT_ID, makeConfig, presetConfig } from '../../../src/model/config.js';
import { encodeModel } from '../../../src/model/onnx/encode.js';
import type { Graph } from '../../../src/model/onnx/graph.js';
import { SeededRandom } from '../../../src/model/random.js';
import { type ModelSession, createModelSession } from '../../../src/model/runtime/session.js';
import { type WeightMap, elementCount } from '../../../src/model/tensor.js';
import { type TrainingBatch, type TrainingRow, makeBatch } from '../../../src/model/training/data.js';
import { mergeLora } from '../../../src/model/training/lora-merge.js';
import { type OptimizerSettings, type StepResult, type TrainingState, TrainingStepRunner } from '../../../src/model/training/step-runner.js';
import { GRADIENT_SQUARE_SUM, GRADIENT_WEIGHT, type LoraSettings, type TrainableParameter, batchFeeds, buildGradientGraph, gradientName, isDecayedWeight } from '../../../src/model/training/train-graph.js';
import { initWeights, weightShapes } from '../../../src/model/files/weights.js';
import {
  type AdamWSettings,
  adamWStep,
  type ReferenceWeights,
  type TrainBatch,
  emptyOptimizerState,
  float64Weights,
  isDecayed,
  referenceLossAndGradients,
  referenceTrainStep,
} from '../../reference/gpt2-train-reference.js';
import { perturbedWeights } from '../../helpers/perturbed-weights.js';

/**
 * tunebot's training graphs against the independent float64 reference
 * (test/reference/gpt2-train-reference.ts, itself checked by finite differences):
 * - the float64 gradient graph on a small model: loss, every gradient, the squared norm that
 *   clipping uses and two AdamW steps from its gradients agree to 1e-10 of each tensor's
 *   largest value; only the order of floating-point operations differs (adamw.ts's float32
 *   kernel has its own test, adamw.test.ts);
 * - the float32 TrainingStepRunner on the tiny preset (real vocabulary) within float32
 *   tolerances stated at each check;
 * - accumulation over micro-batches, an all-zero loss mask, and LoRA (finite differences of
 *   the graph's own loss, and the merged model's loss).
 */

const SMALL = makeConfig({ n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 13, initializer_range: 0.4 });
const PAD = 12;


// Token 3 is read three times in row 0 and 5 in rows 0 and 1 (wte's gather gradient
// accumulates); row 1 is right-padded; row 2's first two targets do not count.
const BATCH_1 = makeBatch(
  [
    { ids: [3, 5, 3, 7, 3, 1, 8], promptLength: 2 },
    { ids: [5, 2, 5, 9, 4], promptLength: 1 },
    { ids: [11, 6, 6, 10], promptLength: 3 },
  ],
  PAD,
);
// Row 1 counts no target at all (its loss mask is cleared), so it must change nothing.
const BATCH_2 = withoutLoss(makeBatch([{ ids: [4, 6, 4, 8, 10, 2], promptLength: 2 }, { ids: [7, 7, 1], promptLength: 1 }], PAD), [1]);

function withoutLoss(batch: TrainingBatch, rows: readonly number[]): TrainingBatch {
  const lossMask = Float32Array.from(batch.lossMask);
  for (const row of rows) lossMask.fill(0, row * batch.length, (row + 1) * batch.length);
  return { ...batch, lossMask, lossTokens: lossMask.reduce((sum, m) => sum + m, 0) };
}

/** The reference's nested (B, T) form of a flat batch. */
function referenceBatch(batch: TrainingBatch): TrainBatch {
  const nested = (flat: ArrayLike<number | bigint>): number[][] =>
    Array.from({ length: batch.batchSize }, (_, b) => Array.from({ length: batch.length }, (_, t) => Number(flat[b * batch.length + t])));
  return { inputIds: nested(batch.inputIds), attentionMask: nested(batch.attentionMask), targets: nested(batch.targets), lossMask: nested(batch.lossMask) };
}

const session = (graph: Graph): Promise<ModelSession> =>
  createModelSession(encodeModel(graph), { executionProvider: 'cpu', logger: silentLogger });

interface GraphGradients {
  readonly loss: number;
  readonly tokens: number;
  readonly gradients: ReferenceWeights;
  readonly squareSum: number;
}

/** One run of a float64 gradient graph; `frozen` feeds LoRA's base weights, `weight` scales the gradients. */
async function runGradientGraph(
  gradientSession: ModelSession, parameters: readonly TrainableParameter[], values: ReadonlyMap<string, Float64Array>, batch: TrainingBatch,
  options: { frozen?: ReadonlyMap<string, Float64Array>; weight?: number } = {},
): Promise<GraphGradients> {
  const feeds: Record<string, ort.Tensor> = {
    ...batchFeeds(batch),
    [GRADIENT_WEIGHT]: new ort.Tensor('float64', Float64Array.of(options.weight ?? 1), []),
  };
  for (const { name, dims: shape } of parameters) feeds[name] = new ort.Tensor('float64', values.get(name) as Float64Array, [...shape]);
  const shapes = weightShapes(SMALL);
  for (const [name, data] of options.frozen ?? []) feeds[name] = new ort.Tensor('float64', data, shapes.get(name) as number[]);
  const outputs = await gradientSession.run(feeds);
  const gradients: ReferenceWeights = new Map(parameters.map(({ name }) => [name, outputs[gradientName(name)].data as Float64Array]));
  return { loss: Number(outputs.loss.data[0]), tokens: Number(outputs.tokens.data[0]), gradients, squareSum: Number(outputs[GRADIENT_SQUARE_SUM].data[0]) };
}

function maxAbs(values: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < values.length; i++) max = Math.max(max, Math.abs(values[i]));
  return max;
}

/** max |actual - expected| over a tensor, divided by max |expected| (absolute when expected is all zero). */
function tensorError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  const scale = maxAbs(expected);
  return scale === 0 ? worst : worst / scale;
}

/** Asserts tensorError <= tolerance for every tensor of `expected`; returns the worst error seen. */
function assertTensorsClose(actual: ReadonlyMap<string, ArrayLike<number>>, expected: ReadonlyMap<string, ArrayLike<number>>, tolerance: number, label: string): number {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${label}: tensor names`);
  let worst = 0;
  for (const [name, values] of expected) {
    const error = tensorError(actual.get(name) as ArrayLike<number>, values);
    assert.ok(Number.isFinite(error) && error <= tolerance, `${label} ${name}: error ${error} over ${tolerance}`);
    worst = Math.max(worst, error);
  }
  return worst;
}

const relative = (actual: number, expected: number): number => Math.abs(actual - expected) / Math.abs(expected);

describe('training graphs in float64 equal the float64 reference', () => {
  const fullGraph = buildGradientGraph(SMALL, { floatType: 'float64' });
  const parameters = fullGraph.parameters;
  const weights = float64Weights(SMALL, perturbedWeights(SMALL, 7));
  let gradientSession: ModelSession;
  before(async () => {
    gradientSession = await session(fullGraph.graph);
  });
  after(() => gradientSession.release());

  it('feeds the positions whose target counts, row by row, with those targets', () => {
    const feeds = batchFeeds(BATCH_1);
    assert.deepEqual(feeds.loss_positions.dims, [10, 2]);
    const pairs = Array.from({ length: 10 }, (_, i) => [Number(feeds.loss_positions.data[2 * i]), Number(feeds.loss_positions.data[2 * i + 1])]);
    assert.deepEqual(pairs, [[0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [1, 0], [1, 1], [1, 2], [1, 3], [2, 2]]);
    assert.deepEqual(Array.from(feeds.loss_targets.data as BigInt64Array, Number), [3, 7, 3, 1, 8, 2, 5, 9, 4, 10]);
    assert.throws(() => batchFeeds({ ...BATCH_1, lossTokens: 9 }), /the batch counts 9 loss tokens and its mask 10/);
  });

  it('trains every weight of the model, decaying the same ones as the reference', () => {
    assert.deepEqual(parameters.map(({ name }) => name), [...weightShapes(SMALL).keys()]);
    for (const { name, dims, decay } of parameters) {
      assert.deepEqual(dims, weightShapes(SMALL).get(name));
      assert.equal(decay, isDecayed(name), name);
      assert.equal(isDecayedWeight(name), isDecayed(name), name);
    }
    assert.equal(parameters.filter(({ decay }) => decay).length, 4 * SMALL.n_layer);
  });

  it('keeps no forward activation for its shape alone, and makes each gradient in its output', () => {
    // ONNX Runtime frees a value after its last reader: a Shape node in the backward pass on a
    // forward activation keeps all of it alive until then, and an Identity copying a gradient
    // into its output holds the gradient twice (both once took 124M's working set past 3 GB).
    for (const { graph } of [fullGraph, buildGradientGraph(SMALL, { lora: { rank: 2, alpha: 4 } })]) {
      const forwardValues = new Set(graph.nodes.filter((node) => !node.name.startsWith('backward/')).flatMap((node) => node.outputs));
      const shapesOfActivations = graph.nodes.filter((node) => node.name.startsWith('backward/') && node.opType === 'Shape' && forwardValues.has(node.inputs[0]));
      assert.deepEqual(shapesOfActivations.map((node) => `${node.name}(${node.inputs[0]})`), []);
      assert.deepEqual(graph.nodes.filter((node) => node.opType === 'Identity').map((node) => node.name), []);
      const produced = new Set(graph.nodes.flatMap((node) => node.outputs));
      for (const output of graph.outputs) assert.ok(produced.has(output.name), `${output.name} is a node's own output`);
    }
  });

  for (const [label, batch] of [['a right-padded batch with repeated ids', BATCH_1], ['a batch with an all-zero-loss-mask row', BATCH_2]] as const) {
    it(`loss and every gradient, ${label}`, async (t) => {
      const graph = await runGradientGraph(gradientSession, parameters, weights, batch);
      const reference = referenceLossAndGradients(SMALL, weights, referenceBatch(batch));
      assert.ok(reference.loss > 1, `loss ${reference.loss} should be far from 0 with these weights`);
      assert.ok(relative(graph.loss, reference.loss) < 1e-12, `loss ${graph.loss} vs ${reference.loss}`);
      assert.equal(graph.tokens, batch.lossTokens);
      const worst = assertTensorsClose(graph.gradients, reference.gradients, 1e-10, 'gradient');
      const squareSum = [...reference.gradients.values()].reduce((sum, gradient) => sum + gradient.reduce((s, g) => s + g * g, 0), 0);
      assert.ok(relative(graph.squareSum, squareSum) < 1e-10, `squared norm ${graph.squareSum} vs ${squareSum}`);
      t.diagnostic(`worst gradient error ${worst.toExponential(2)} of the tensor's largest value`);
    });
  }

  it('the batch weight scales the gradients and their squared norm, not the loss', async () => {
    const whole = await runGradientGraph(gradientSession, parameters, weights, BATCH_1);
    const share = await runGradientGraph(gradientSession, parameters, weights, BATCH_1, { weight: 0.375 });
    assert.equal(share.loss, whole.loss);
    assert.ok(relative(share.squareSum, 0.375 ** 2 * whole.squareSum) < 1e-12);
    const scaled = new Map([...whole.gradients].map(([name, gradient]) => [name, gradient.map((g) => 0.375 * g)]));
    assertTensorsClose(share.gradients, scaled, 1e-14, 'weighted gradient');
  });

  it('two steps: the gradient graph at the weights AdamW gave, with clipping and weight decay', async (t) => {
    const settings: AdamWSettings = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, clipNorm: 0.5 };
    let graphWeights = weights;
    let graphState = emptyOptimizerState(SMALL);
    let referenceWeights = weights;
    let referenceState = emptyOptimizerState(SMALL);
    for (const batch of [BATCH_1, BATCH_2]) {
      const { gradients, squareSum } = await runGradientGraph(gradientSession, parameters, graphWeights, batch);
      const graph = adamWStep(graphWeights, gradients, graphState, settings);
      const reference = referenceTrainStep(SMALL, referenceWeights, referenceState, referenceBatch(batch), settings);
      assert.ok(reference.gradNorm > settings.clipNorm, `gradient norm ${reference.gradNorm} should be clipped`);
      const graphNorm = Math.sqrt(squareSum);
      assert.ok(relative(graphNorm, reference.gradNorm) < 1e-10, `gradient norm ${graphNorm} vs ${reference.gradNorm}`);
      const step = `step ${reference.state.step}`;
      const errors = [
        assertTensorsClose(graph.weights, reference.weights, 1e-10, `${step} weight`),
        assertTensorsClose(graph.state.m, reference.state.m, 1e-10, `${step} m`),
        assertTensorsClose(graph.state.v, reference.state.v, 1e-10, `${step} v`),
      ];
      t.diagnostic(`${step}: worst weight, m, v errors ${errors.map((e) => e.toExponential(2)).join(', ')}`);
      ({ weights: graphWeights, state: graphState } = graph);
      ({ weights: referenceWeights, state: referenceState } = reference);
    }
  });
});

const TINY = presetConfig('tiny');
const OPTIMIZER: OptimizerSettings = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01, clipNorm: 1 };
const referenceSettings = (lr: number): AdamWSettings => ({
  lr, beta1: OPTIMIZER.beta1, beta2: OPTIMIZER.beta2, eps: OPTIMIZER.epsilon, weightDecay: OPTIMIZER.weightDecay, clipNorm: OPTIMIZER.clipNorm,
});

/** Rows of random GPT-2 ids of the given lengths; the first targets up to `prompt` do not count. */
function randomRows(seed: number, shapes: readonly { length: number; prompt: number }[]): TrainingRow[] {
  const random = new SeededRandom(seed);
  return shapes.map(({ length, prompt }) => ({ ids: Array.from({ length }, () => Math.floor(random.next() * END_OF_TEXT_ID)), promptLength: prompt }));
}

/** The outcome of a first step (m = v = 0 before), from the runner or the reference. */
interface FirstStep {
  readonly loss: number;
  readonly gradNorm: number;
  readonly weights: ReadonlyMap<string, ArrayLike<number>>;
  readonly m: ReadonlyMap<string, ArrayLike<number>>;
  readonly v: ReadonlyMap<string, ArrayLike<number>>;
}

const runnerStep = (result: StepResult, state: TrainingState): FirstStep => ({ ...result, weights: state.parameters, m: state.moments, v: state.variances });

/**
 * Float32 tolerances of a first step on the tiny model, with the observed errors (as text).
 * - m = (1 - beta1) * clipped gradient, compared row by row (runs of the last dimension):
 *   float32 error scales with the terms summed into an element, and those differ by orders of
 *   magnitude between wte's rows (a token read in the batch, or one only the head's softmax
 *   sees). ~5e-6 of a row's largest value is seen; 2e-5 leaves room for another CPU's order.
 * - the weights: at t = 1 the update is lr * g / (|g| + eps), whose slope lr * eps / (|g| +
 *   eps)^2 is negligible where |g| >> eps but up to lr / eps where g is rounding noise around
 *   0 (the key bias, whose exact gradient is 0): there float32 noise legitimately moves the
 *   weight by up to 2 lr. So each weight may differ by the update's change over the gradient's
 *   error interval, plus an ulp of the weight (rounding it, its decay and the subtraction) and
 *   1e-9 for the update's own rounding (a few ulp of lr).
 */
function assertSameFirstStep(config: Gpt2Config, actual: FirstStep, expected: FirstStep, lossTolerance: number, normTolerance: number, lr: number): string {
  const lossError = relative(actual.loss, expected.loss);
  const normError = relative(actual.gradNorm, expected.gradNorm);
  assert.ok(lossError < lossTolerance, `loss ${actual.loss} vs ${expected.loss}`);
  assert.ok(normError < normTolerance, `gradient norm ${actual.gradNorm} vs ${expected.gradNorm}`);
  assertTensorsClose(actual.v, expected.v, 4e-5, 'v');
  const gradientTolerance = 2e-5;
  let gradientError = 0;
  let largest = 0;
  let loose = 0;
  for (const [name, dims] of weightShapes(config)) {
    const width = dims[dims.length - 1];
    const gradient = Array.from(expected.m.get(name) as ArrayLike<number>, (m) => m / (1 - OPTIMIZER.beta1));
    const otherGradient = Array.from(actual.m.get(name) as ArrayLike<number>, (m) => m / (1 - OPTIMIZER.beta1));
    const [weights, expectedWeights] = [actual.weights.get(name) as ArrayLike<number>, expected.weights.get(name) as ArrayLike<number>];
    for (let start = 0; start < gradient.length; start += width) {
      const rowError = tensorError(otherGradient.slice(start, start + width), gradient.slice(start, start + width));
      assert.ok(rowError <= gradientTolerance, `m (the clipped gradient) ${name} row ${start / width}: error ${rowError}`);
      gradientError = Math.max(gradientError, rowError);
      const allowedGradientError = gradientTolerance * maxAbs(gradient.slice(start, start + width));
      for (let i = start; i < start + width; i++) {
        const nearest = Math.max(0, Math.abs(gradient[i]) - allowedGradientError);
        const eps = OPTIMIZER.epsilon;
        const tolerance = 1e-9 + 2 ** -23 * Math.abs(expectedWeights[i]) + lr * Math.min(2, (allowedGradientError * eps) / (nearest + eps) ** 2);
        const difference = Math.abs(weights[i] - expectedWeights[i]);
        if (!(difference <= tolerance)) assert.fail(`${name}[${i}]: ${weights[i]} vs ${expectedWeights[i]}, gradient ${gradient[i]}, tolerance ${tolerance}`);
        largest = Math.max(largest, difference);
        if (tolerance > 1e-6) loose++;
      }
    }
  }
  const total = [...weightShapes(config).values()].reduce((sum, dims) => sum + elementCount(dims), 0);
  return (
    `loss error ${lossError.toExponential(2)}, gradient norm error ${normError.toExponential(2)}, gradient error ${gradientError.toExponential(2)} of a row's largest, ` +
    `largest weight difference ${largest.toExponential(2)} (${((loose / total) * 100).toFixed(2)}% of weights have near-zero gradients and a tolerance over 1e-6)`
  );
}

describe('the float32 TrainingStepRunner on the tiny preset', () => {
  const base = initWeights(TINY, 3);
  const lr = 1e-3;
  let runner: TrainingStepRunner;
  before(async () => {
    runner = await TrainingStepRunner.create(TINY, base, { optimizer: OPTIMIZER, executionProvider: 'cpu', logger: silentLogger });
  });
  after(() => runner.release());

  it('decays the same weights as the reference', () => {
    assert.deepEqual(runner.parameters.map(({ name }) => name), [...weightShapes(TINY).keys()]);
    for (const { name, decay } of runner.parameters) assert.equal(decay, isDecayed(name), name);
  });

  it('one step equals the reference step within float32 tolerances', async (t) => {
    const batch = makeBatch(randomRows(1, [{ length: 9, prompt: 3 }, { length: 6, prompt: 1 }]), END_OF_TEXT_ID);
    const state = runner.initialState(base, 0);
    const result = await runner.step(state, [batch], lr);
    const reference = referenceTrainStep(TINY, base, emptyOptimizerState(TINY), referenceBatch(batch), referenceSettings(lr));
    assert.equal(result.lossTokens, 11);
    assert.ok(reference.gradNorm > OPTIMIZER.clipNorm, `gradient norm ${reference.gradNorm} should be clipped`);
    t.diagnostic(assertSameFirstStep(TINY, runnerStep(result, state), { ...reference, ...reference.state }, 1e-5, 1e-4, lr));
  });

  it('two micro-batches with different loss-token counts make the step of their concatenation', async (t) => {
    const rows = randomRows(2, [{ length: 9, prompt: 3 }, { length: 6, prompt: 1 }, { length: 12, prompt: 9 }]);
    const microBatches = [makeBatch(rows.slice(0, 2), END_OF_TEXT_ID), makeBatch(rows.slice(2), END_OF_TEXT_ID)];
    const whole = makeBatch(rows, END_OF_TEXT_ID);
    assert.deepEqual(microBatches.map((batch) => [batch.length, batch.lossTokens]), [[8, 11], [11, 3]]);
    const [accumulated, single] = [runner.initialState(base, 0), runner.initialState(base, 0)];
    const accumulatedResult = await runner.step(accumulated, microBatches, lr);
    const singleResult = await runner.step(single, [whole], lr);
    assert.equal(accumulatedResult.lossTokens, whole.lossTokens);
    t.diagnostic(assertSameFirstStep(TINY, runnerStep(accumulatedResult, accumulated), runnerStep(singleResult, single), 1e-6, 1e-5, lr));
  });

  it('updates its state where it lies: the arrays a step starts with are the ones it ends with', async () => {
    const own = new Map([...base].map(([name, { dims, data }]) => [name, { dims, data: Float32Array.from(data) }]));
    const firstArrays = [...own.values()].map(({ data }) => data);
    const state = runner.initialState(own, 0, { inPlace: true });
    for (const [name, { data }] of own) assert.equal(state.parameters.get(name), data, `${name}: the caller sees the state's parameters`);
    assert.ok(firstArrays.every((data) => data.buffer.detached), 'the arrays they replaced are given up at once');
    const copied = runner.initialState(base, 0);
    for (const [name, { data }] of base) assert.notEqual(copied.parameters.get(name), data, `${name}: copied without inPlace`);
    const arrays = (current: TrainingState) => [current.parameters, current.moments, current.variances].flatMap((tensors) => [...tensors.values()]);
    const before = arrays(state);
    const original = Float32Array.from(state.parameters.get('h.0.attn.c_attn.weight') as Float32Array);
    const batch = makeBatch(randomRows(4, [{ length: 9, prompt: 3 }, { length: 6, prompt: 1 }]), END_OF_TEXT_ID);
    for (let step = 0; step < 2; step++) await runner.step(state, [batch, batch], lr);
    assert.equal(state.step, 2);
    const after = arrays(state);
    assert.ok(before.every((array, i) => array === after[i]), 'the same arrays, updated in place');
    assert.ok((state.parameters.get('h.0.attn.c_attn.weight') as Float32Array).some((w, i) => w !== original[i]), 'and they did change');
  });

  it('gives up a weights file buffer only when no weight left in the base lies in it', () => {
    const fileBuffer = (extra: number) => {
      const length = [...base.values()].reduce((sum, { data }) => sum + data.length, extra);
      const buffer = new ArrayBuffer(4 * length);
      let offset = 0;
      const weights = new Map([...base].map(([name, { dims, data }]) => {
        const view = new Float32Array(buffer, 4 * offset, data.length);
        view.set(data);
        offset += data.length;
        return [name, { dims, data: view }];
      }));
      return { buffer, weights, rest: new Float32Array(buffer, 4 * offset, extra) };
    };
    const whole = fileBuffer(0);
    const first = runner.initialState(whole.weights, 0, { inPlace: true });
    assert.equal(whole.buffer.detached, true);
    // Weights that are already a state's parameters are copied; their memory stays that state's.
    const second = runner.initialState(whole.weights, 0, { inPlace: true });
    assert.deepEqual([...second.parameters.values()].map((data) => [...data]), [...first.parameters.values()].map((data) => [...data]));
    assert.ok([...first.parameters.values()].every((data) => data.length > 0), "the first state's arrays are whole");
    const shared = fileBuffer(5);
    shared.weights.set('not.trained', { dims: [5], data: shared.rest });
    runner.initialState(shared.weights, 0, { inPlace: true });
    assert.equal(shared.buffer.detached, false);
    assert.equal(shared.weights.get('not.trained')?.data, shared.rest);
    const wrong = new Map([...base].map(([name, { dims, data }]) => [name, { dims, data: name === 'wpe.weight' ? data.subarray(1) : data }]));
    assert.throws(() => runner.initialState(wrong, 0), (error) => error instanceof ModelError && error.code === 'WEIGHTS_MISMATCH' && /^wpe.weight has \d+ values; the model's shape needs \d+$/.test(error.message));
  });

  it('an all-zero loss mask: loss 0, zero gradients, and a step that only decays', async () => {
    const batch = withoutLoss(makeBatch(randomRows(3, [{ length: 7, prompt: 2 }, { length: 4, prompt: 1 }]), END_OF_TEXT_ID), [0, 1]);
    assert.equal(batch.lossTokens, 0);
    const state = runner.initialState(base, 0);
    const { loss, gradients } = await runner.lossAndGradients(state, batch);
    assert.equal(Math.abs(loss), 0); // a sum of no terms may come out as -0
    assert.equal(gradients.size, runner.parameters.length);
    for (const [name, gradient] of gradients) assert.ok(gradient.every((value) => value === 0), `${name}: gradient is not all zero`);

    const result = await runner.step(state, [batch], lr);
    assert.deepEqual({ ...result, loss: Math.abs(result.loss) }, { loss: 0, gradNorm: 0, lossTokens: 0 });
    // With g = 0 the moments stay 0 and the Adam term is 0 / (0 + eps) = 0: decayed weights
    // are multiplied by 1 - lr * wd (float32 arithmetic: the factor and the product each rounded
    // to float32), the others are left alone.
    const decay = Math.fround(1 - lr * OPTIMIZER.weightDecay);
    for (const { name, decay: decayed } of runner.parameters) {
      const before = (base.get(name) as { data: Float32Array }).data;
      const expected = decayed ? before.map((w) => Math.fround(w * decay)) : before;
      assert.ok((state.parameters.get(name) as Float32Array).every((w, i) => w === expected[i]), `${name}: not ${decayed ? 'decayed alone' : 'unchanged'}`);
      assert.ok((state.moments.get(name) as Float32Array).every((m) => m === 0), `${name}: m is not 0`);
      assert.ok((state.variances.get(name) as Float32Array).every((v) => v === 0), `${name}: v is not 0`);
    }
    assert.equal(state.step, 1);
  });
});

/**
 * LoRA in float64: W' = W + (A B) * alpha / r. mergeLora writes float32, so to compare the
 * merged model at float64 precision every value sits on a dyadic grid where the merge is exact
 * in float32: base weights on multiples of 2^-10, adapters on multiples of 2^-4, alpha / r = 2,
 * so each merged weight is a multiple of 2^-10 below 2^5 in magnitude (asserted below).
 */
describe('LoRA gradients and merge in float64', () => {
  const lora: LoraSettings = { rank: 2, alpha: 4 };
  const scale = lora.alpha / lora.rank;
  const onGrid = (value: number, step: number): number => Math.round(value / step) * step;
  const base: WeightMap = new Map([...perturbedWeights(SMALL, 7)].map(([name, { dims, data }]) => [name, { dims, data: data.map((w) => onGrid(w, 2 ** -10)) }]));
  const loraGraph = buildGradientGraph(SMALL, { lora, floatType: 'float64' });
  const frozen = float64Weights(SMALL, base);
  const fullGraph = buildGradientGraph(SMALL, { floatType: 'float64' });
  const random = new SeededRandom(5);
  const adapters = (zeroB: boolean): ReferenceWeights =>
    new Map(loraGraph.parameters.map(({ name, dims }) => {
      const values = Float64Array.from({ length: dims[0] * dims[1] }, () => onGrid(0.5 * random.normal(), 2 ** -4));
      return [name, zeroB && name.endsWith('.lora_b') ? values.fill(0) : values];
    }));
  let loraSession: ModelSession;
  let fullSession: ModelSession;
  before(async () => {
    loraSession = await session(loraGraph.graph);
    fullSession = await session(fullGraph.graph);
  });
  after(async () => {
    await loraSession.release();
    await fullSession.release();
  });

  it('trains only the adapters; the base weights are inputs it does not train', () => {
    const targets = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];
    const expected = [0, 1].flatMap((l) => targets.flatMap((target) => [`h.${l}.${target}.lora_a`, `h.${l}.${target}.lora_b`]));
    assert.deepEqual(loraGraph.parameters.map(({ name }) => name), expected);
    assert.deepEqual(loraGraph.frozen, [...weightShapes(SMALL).keys()]);
    assert.ok(![...loraGraph.graph.initializers.keys()].some((name) => weightShapes(SMALL).has(name)), 'no weight is baked in');
    const batchInputs = ['input_ids', 'attention_mask', 'loss_positions', 'loss_targets', GRADIENT_WEIGHT];
    assert.deepEqual([...loraSession.inputNames].sort(), [...expected, ...loraGraph.frozen, ...batchInputs].sort());
    assert.ok(loraGraph.parameters.every(({ decay }) => decay));
  });

  // Central differences with h = 1e-6: truncation ~h^2 ~ 1e-12, rounding ~1e-16 * loss / h ~ 1e-9.
  const finiteDifferenceAgrees = (analytic: number, numeric: number): boolean =>
    Math.abs(analytic - numeric) <= 1e-8 + 1e-6 * Math.max(Math.abs(analytic), Math.abs(numeric));

  for (const zeroB of [true, false]) {
    it(`adapter gradients match finite differences of the graph's loss, ${zeroB ? 'B = 0 (as training starts)' : 'non-zero B'}`, async (t) => {
      const values = adapters(zeroB);
      const { loss, gradients } = await runGradientGraph(loraSession, loraGraph.parameters, values, BATCH_1, { frozen });
      const lossAt = async (name: string, index: number, delta: number): Promise<number> => {
        const tensor = values.get(name) as Float64Array;
        const original = tensor[index];
        tensor[index] = original + delta;
        const result = await runGradientGraph(loraSession, loraGraph.parameters, values, BATCH_1, { frozen });
        tensor[index] = original;
        return result.loss;
      };
      const h = 1e-6;
      let worst = 0;
      for (const { name } of loraGraph.parameters) {
        const gradient = gradients.get(name) as Float64Array;
        if (zeroB && name.endsWith('.lora_a')) assert.ok(gradient.every((value) => value === 0), `${name}: with B = 0, A gets no gradient`);
        else assert.ok(maxAbs(gradient) > 1e-4, `${name}: gradient ${maxAbs(gradient)} too small for the check to mean anything`);
        for (const index of [0, 1, 2, 3].map(() => Math.floor(random.next() * gradient.length))) {
          const numeric = ((await lossAt(name, index, h)) - (await lossAt(name, index, -h))) / (2 * h);
          assert.ok(finiteDifferenceAgrees(gradient[index], numeric), `${name}[${index}]: analytic ${gradient[index]}, numeric ${numeric}`);
          worst = Math.max(worst, Math.abs(gradient[index] - numeric));
        }
      }
      t.diagnostic(`largest |analytic - numeric| ${worst.toExponential(2)}`);
      if (zeroB) {
        // Zero B makes the adapters a no-op: the loss is the base model's.
        const baseLoss = await runGradientGraph(fullSession, fullGraph.parameters, float64Weights(SMALL, base), BATCH_1);
        assert.ok(relative(loss, baseLoss.loss) < 1e-12, `loss ${loss} vs the base model's ${baseLoss.loss}`);
      }
    });
  }

  it('the merged model has the adapted loss, and the adapter gradients follow from its weight gradients', async (t) => {
    const values = adapters(false);
    const adapted = await runGradientGraph(loraSession, loraGraph.parameters, values, BATCH_1, { frozen });
    const merged = mergeLora(SMALL, base, new Map([...values].map(([name, data]) => [name, Float32Array.from(data)])), lora);

    for (const [name, { data }] of merged) {
      const adapter = name.replace(/\.weight$/, '');
      const a = values.get(`${adapter}.lora_a`);
      const b = values.get(`${adapter}.lora_b`);
      const before = (base.get(name) as { data: Float32Array }).data;
      if (!a || !b) {
        assert.equal(data, before, `${name} is not adapted`);
        continue;
      }
      const [inputs, outputs] = weightShapes(SMALL).get(name) as number[];
      for (let i = 0; i < inputs; i++) {
        for (let j = 0; j < outputs; j++) {
          let low = 0;
          for (let k = 0; k < lora.rank; k++) low += a[i * lora.rank + k] * b[k * outputs + j];
          assert.equal(data[i * outputs + j], before[i * outputs + j] + scale * low, `${name}[${i}, ${j}] (the grid keeps the merge exact)`);
        }
      }
    }

    const mergedWeights = float64Weights(SMALL, merged);
    const full = await runGradientGraph(fullSession, fullGraph.parameters, mergedWeights, BATCH_1);
    const reference = referenceLossAndGradients(SMALL, mergedWeights, referenceBatch(BATCH_1));
    const baseLoss = referenceLossAndGradients(SMALL, base, referenceBatch(BATCH_1)).loss;
    assert.ok(Math.abs(reference.loss - baseLoss) > 0.1, `the adapters should change the loss (${baseLoss} -> ${reference.loss})`);
    assert.ok(relative(adapted.loss, full.loss) < 1e-9, `adapted loss ${adapted.loss} vs merged ${full.loss}`);
    assert.ok(relative(adapted.loss, reference.loss) < 1e-9, `adapted loss ${adapted.loss} vs reference ${reference.loss}`);

    // W' = W + s A B, so dL/dA = s G B^T and dL/dB = s A^T G with G the reference's dL/dW'.
    const expected: ReferenceWeights = new Map();
    for (const { name, dims } of loraGraph.parameters) {
      const prefix = name.replace(/\.lora_[ab]$/, '');
      const g = reference.gradients.get(`${prefix}.weight`) as Float64Array;
      const a = values.get(`${prefix}.lora_a`) as Float64Array;
      const b = values.get(`${prefix}.lora_b`) as Float64Array;
      const [inputs, outputs] = weightShapes(SMALL).get(`${prefix}.weight`) as number[];
      const result = new Float64Array(dims[0] * dims[1]);
      for (let i = 0; i < inputs; i++) {
        for (let j = 0; j < outputs; j++) {
          for (let k = 0; k < lora.rank; k++) {
            if (name.endsWith('.lora_a')) result[i * lora.rank + k] += scale * g[i * outputs + j] * b[k * outputs + j];
            else result[k * outputs + j] += scale * a[i * lora.rank + k] * g[i * outputs + j];
          }
        }
      }
      expected.set(name, result);
    }
    const gradientError = assertTensorsClose(adapted.gradients, expected, 1e-10, 'adapter gradient');
    t.diagnostic(
      `loss error vs the merged graph ${relative(adapted.loss, full.loss).toExponential(2)}, vs the reference ${relative(adapted.loss, reference.loss).toExponential(2)}; ` +
        `adapter gradient error ${gradientError.toExponential(2)} of the tensor's largest`,
    );
  });
});
