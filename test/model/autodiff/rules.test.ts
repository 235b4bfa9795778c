import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { type GradientRule, buildBackward } from '../../../src/model/autodiff/backward.js';
import { GRADIENT_RULES } from '../../../src/model/autodiff/rules.js';
import { ModelError } from '../../../src/model/errors.js';
import { encodeModel } from '../../../src/model/onnx/encode.js';
import { GraphBuilder, type Value } from '../../../src/model/onnx/graph.js';
import { ShapeInference } from '../../../src/model/onnx/shape-inference.js';
import { SeededRandom } from '../../../src/model/random.js';

/**
 * Every gradient rule against central finite differences. Each case builds a small graph
 * (inputs with fixed dims, the operator under test, loss = sum over outputs of
 * ReduceSum(output * R) with R a fixed random tensor so every output element's gradient
 * differs), adds buildBackward's pass, and compares each parameter's gradient with
 * (loss(x + h) - loss(x - h)) / 2h computed by the same model on perturbed inputs.
 *
 * Everything is float64 (ONNX Runtime's CPU kernels cover every operator here in double):
 * h = 1e-6, truncation error ~h^2 and rounding ~1e-16 |loss| / h ~ 1e-9, so agreement within
 * 1e-6 relative (|a-b| / (|a|+|b|)) or 1e-9 absolute; the worst seen is ~4e-8 relative.
 */
const random = new SeededRandom(20240611);

type Operand =
  | { readonly kind: 'parameter' | 'float'; readonly dims: readonly number[]; readonly data: Float64Array; readonly declared?: readonly (number | string)[] }
  | { readonly kind: 'int64'; readonly dims: readonly number[]; readonly data: BigInt64Array }
  | { readonly kind: 'bool'; readonly dims: readonly number[]; readonly data: Uint8Array };
type Operands = Readonly<Record<string, Operand>>;
type Values = Record<string, Value>;

const count = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
const normals = (n: number) => Float64Array.from({ length: n }, () => random.normal());

/** A differentiable input, standard normal unless given. */
const parameter = (dims: readonly number[], data: ArrayLike<number> = normals(count(dims))): Operand => ({ kind: 'parameter', dims, data: Float64Array.from(data) });
/**
 * A parameter whose graph input declares `declared` (symbolic dims such as "rows"): the rules
 * then know its shape only by name, or not at all where two names differ, and must build it at
 * run time.
 */
const symbolic = (declared: readonly (number | string)[], dims: readonly number[]): Operand => ({ ...parameter(dims), declared } as Operand);
/** A float input that is not a parameter (a mask, a second operand held fixed). */
const fixed = (dims: readonly number[], data: ArrayLike<number> = normals(count(dims))): Operand => ({ kind: 'float', dims, data: Float64Array.from(data) });
const int64 = (dims: readonly number[], data: readonly number[]): Operand => ({ kind: 'int64', dims, data: BigInt64Array.from(data.map(BigInt)) });
const bool = (dims: readonly number[], data: readonly boolean[]): Operand => ({ kind: 'bool', dims, data: Uint8Array.from(data.map(Number)) });
/** Values bounded away from zero, for divisors. */
const awayFromZero = (dims: readonly number[]) => parameter(dims, Array.from(normals(count(dims)), (v) => Math.sign(v || 1) * (0.5 + Math.abs(v) / 2)));

/** The dims a graph input declares for `operand`: its symbolic ones where it has them. */
function declaredDims(operand: Operand): readonly (number | string)[] {
  return 'declared' in operand && operand.declared ? operand.declared : operand.dims;
}

function declareInputs(g: GraphBuilder, operands: Operands): Values {
  const values: Values = {};
  for (const [name, operand] of Object.entries(operands)) {
    values[name] = g.input(name, operand.kind === 'parameter' || operand.kind === 'float' ? g.floatType : operand.kind, declaredDims(operand));
  }
  return values;
}

function feedsOf(operands: Operands): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, operand] of Object.entries(operands)) {
    const dims = [...operand.dims];
    if (operand.kind === 'int64') feeds[name] = new ort.Tensor('int64', operand.data, dims);
    else if (operand.kind === 'bool') feeds[name] = new ort.Tensor('bool', operand.data, dims);
    else feeds[name] = new ort.Tensor('float64', operand.data, dims);
  }
  return feeds;
}

function closeEnough(analytic: number, numeric: number): boolean {
  const error = Math.abs(analytic - numeric);
  return error < 1e-9 || error / Math.max(1e-8, Math.abs(analytic) + Math.abs(numeric)) < 1e-6;
}

interface Checked {
  readonly loss: number;
  readonly gradients: ReadonlyMap<string, Float64Array>;
}

/** Builds loss and backward, runs them, and checks every parameter's gradient element by finite differences. */
async function checkGradients(operands: Operands, buildLoss: (g: GraphBuilder, v: Values) => Value): Promise<Checked> {
  const g = new GraphBuilder('gradient-check', 'float64');
  const values = declareInputs(g, operands);
  const loss = buildLoss(g, values);
  const names = Object.keys(operands).filter((name) => operands[name].kind === 'parameter');
  const gradients = buildBackward(g, loss, names.map((name) => values[name]));
  const shapes = new ShapeInference(g);
  for (const name of names) assert.deepEqual(shapes.dims(gradients.get(name)!), declaredDims(operands[name]), `d_${name}'s dims are known, so buildBackward checked them`);
  g.output(loss, 'loss', 'float64', []);
  for (const name of names) g.output(gradients.get(name)!, `d_${name}`, 'float64', declaredDims(operands[name]));

  const session = await ort.InferenceSession.create(encodeModel(g.build()));
  try {
    const base = await session.run(feedsOf(operands));
    const lossAt = async () => Number((await session.run(feedsOf(operands), ['loss'])).loss.data[0]);
    const h = 1e-6;
    const checked = new Map<string, Float64Array>();
    for (const name of names) {
      const output = base[`d_${name}`];
      assert.deepEqual(output.dims, operands[name].dims, `d_${name} has the shape of ${name}`);
      const analytic = Float64Array.from(output.data as Float64Array);
      const x = operands[name].data as Float64Array;
      const failures: string[] = [];
      for (let j = 0; j < x.length; j++) {
        const saved = x[j];
        x[j] = saved + h;
        const plus = await lossAt();
        x[j] = saved - h;
        const minus = await lossAt();
        const numeric = (plus - minus) / (saved + h - (saved - h)); // the step as rounded, not 2h
        x[j] = saved;
        if (!closeEnough(analytic[j], numeric)) failures.push(`d_${name}[${j}]: autodiff ${analytic[j]}, finite difference ${numeric}`);
      }
      assert.equal(failures.length, 0, `${failures.length} of ${x.length} elements differ:\n${failures.slice(0, 8).join('\n')}`);
      checked.set(name, analytic);
    }
    return { loss: Number(base.loss.data[0]), gradients: checked };
  } finally {
    await session.release();
  }
}

/** The forward outputs' shapes, from a model that outputs Shape(output) for each. */
async function outputDims(operands: Operands, forward: (g: GraphBuilder, v: Values) => Value | Value[]): Promise<number[][]> {
  const g = new GraphBuilder('shapes', 'float64');
  const outputs = [forward(g, declareInputs(g, operands))].flat();
  outputs.forEach((output, i) => g.output(g.op('Shape', [output]), `shape${i}`, 'int64', ['rank']));
  const session = await ort.InferenceSession.create(encodeModel(g.build()));
  try {
    const result = await session.run(feedsOf(operands));
    return outputs.map((_, i) => Array.from(result[`shape${i}`].data as BigInt64Array, Number));
  } finally {
    await session.release();
  }
}

/**
 * Checks the operator(s) that `forward` builds: loss = sum_i ReduceSum(output_i * R_i).
 * Returns the weights R_i too, for tests that work a gradient out by hand.
 */
async function checkOperator(operands: Operands, forward: (g: GraphBuilder, v: Values) => Value | Value[]) {
  const weights = (await outputDims(operands, forward)).map((dims) => ({ dims, data: normals(count(dims)) }));
  const checked = await checkGradients(
    operands,
    (g, v) => {
      const terms = [forward(g, v)].flat().map((output, i) =>
        g.op('ReduceSum', [g.op('Mul', [output, g.constFloat([...weights[i].data], weights[i].dims)])], { attributes: { keepdims: 0 } }),
      );
      return terms.reduce((sum, term) => g.op('Add', [sum, term]));
    },
  );
  return { ...checked, weights: weights.map((w) => w.data) };
}

/**
 * Y = alpha * op(A) op(B) + beta * C and loss = sum(Y * R), written out in loops: op(A)[m][k]
 * is A[k][m] when transA, C broadcasts numpy-style to [M, N]. dY = R, so dA, dB and dC follow
 * by the chain rule element by element. ONNX keeps alpha and beta as float32: so does this.
 */
function gemmReference(
  inputs: { a: Float64Array; b: Float64Array; c?: { dims: readonly number[]; data: Float64Array } },
  { transA, transB, alpha: alpha64, beta: beta64, m: M, k: K, n: N }: { transA: number; transB: number; alpha: number; beta: number; m: number; k: number; n: number },
  r: Float64Array,
): { loss: number; gradients: Record<string, Float64Array> } {
  const [alpha, beta] = [Math.fround(alpha64), Math.fround(beta64)];
  const aIndex = (m: number, k: number) => (transA ? k * M + m : m * K + k);
  const bIndex = (k: number, n: number) => (transB ? n * K + k : k * N + n);
  const c = inputs.c;
  const cIndex = (m: number, n: number) => {
    if (!c) return -1;
    const [rows, columns] = c.dims.length === 2 ? c.dims : c.dims.length === 1 ? [1, c.dims[0]] : [1, 1];
    return (rows === 1 ? 0 : m) * columns + (columns === 1 ? 0 : n);
  };
  const dA = new Float64Array(M * K);
  const dB = new Float64Array(K * N);
  const dC = new Float64Array(c ? c.data.length : 0);
  let loss = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let y = 0;
      for (let k = 0; k < K; k++) {
        y += inputs.a[aIndex(m, k)] * inputs.b[bIndex(k, n)];
        dA[aIndex(m, k)] += alpha * r[m * N + n] * inputs.b[bIndex(k, n)];
        dB[bIndex(k, n)] += alpha * r[m * N + n] * inputs.a[aIndex(m, k)];
      }
      y = alpha * y + (c ? beta * c.data[cIndex(m, n)] : 0);
      if (c) dC[cIndex(m, n)] += beta * r[m * N + n];
      loss += y * r[m * N + n];
    }
  }
  return { loss, gradients: c ? { a: dA, b: dB, c: dC } : { a: dA, b: dB } };
}

describe('gradient rules against central finite differences (float64)', () => {
  describe('broadcasting elementwise operators', () => {
    for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
      for (const bDims of [[4], [3, 1], [2, 3, 4]]) {
        it(`${op}: [2,3,4] with [${bDims}]`, async () => {
          await checkOperator({ a: parameter([2, 3, 4]), b: op === 'Div' ? awayFromZero(bDims) : parameter(bDims) }, (g, v) => g.op(op, [v.a, v.b]));
        });
      }
      it(`${op}: [3,1] with [2,3,4] (the first operand broadcast)`, async () => {
        await checkOperator({ a: parameter([3, 1]), b: op === 'Div' ? awayFromZero([2, 3, 4]) : parameter([2, 3, 4]) }, (g, v) => g.op(op, [v.a, v.b]));
      });
    }

    // Dims known by name only: the axes to sum are still fixed when the graph is built, and
    // the input's shape comes from the graph inputs' (a Shape of the forward value would keep it
    // alive until the backward pass); "cols" and "width" name the same size at run time but
    // not to shape inference, so that sum is worked out at run time.
    it('Add: [rows,3,4] with [3,1] declared by name, and with [width,1] that only run time matches', async () => {
      await checkOperator({ a: symbolic(['rows', 'cols', 4], [2, 3, 4]), b: symbolic(['cols', 1], [3, 1]) }, (g, v) => g.op('Add', [v.a, v.b]));
      await checkOperator({ a: symbolic(['rows', 'cols', 4], [2, 3, 4]), b: symbolic(['width', 1], [3, 1]) }, (g, v) => g.op('Add', [v.a, v.b]));
    });

    const condition = Array.from({ length: 24 }, (_, i) => (i * 7) % 3 !== 0);
    it('Where: condition [2,3,4], A [4], B [3,1]', async () => {
      const { gradients } = await checkOperator({ c: bool([2, 3, 4], condition), a: parameter([4]), b: parameter([3, 1]) }, (g, v) => g.op('Where', [v.c, v.a, v.b]));
      assert.ok(gradients.get('a')!.some((d) => d !== 0) && gradients.get('b')!.some((d) => d !== 0));
    });
    it('Where: condition [3,1] broadcast, A [2,3,4], B a fixed [4]', async () => {
      await checkOperator({ c: bool([3, 1], [true, false, true]), a: parameter([2, 3, 4]), b: fixed([4]) }, (g, v) => g.op('Where', [v.c, v.a, v.b]));
    });
  });

  describe('SoftmaxCrossEntropyLoss', () => {
    // Row 2's label is ignored: its scores get no gradient.
    const labels = int64([4], [2, 0, -100, 4]);
    for (const reduction of ['sum', 'none']) {
      it(`reduction ${reduction}, an ignored row`, async () => {
        const { gradients } = await checkOperator({ scores: parameter([4, 5]), labels }, (g, v) =>
          g.op('SoftmaxCrossEntropyLoss', [v.scores, v.labels], { attributes: { reduction, ignore_index: -100 } }),
        );
        assert.ok(gradients.get('scores')!.slice(10, 15).every((d) => d === 0), 'the ignored row');
      });
    }
    it('reduction sum, no ignore_index', async () => {
      await checkOperator({ scores: parameter([3, 4]), labels: int64([3], [3, 0, 1]) }, (g, v) =>
        g.op('SoftmaxCrossEntropyLoss', [v.scores, v.labels], { attributes: { reduction: 'sum' } }),
      );
    });
  });

  describe('unary operators', () => {
    for (const op of ['Neg', 'Tanh', 'Identity']) {
      it(op, async () => {
        await checkOperator({ x: parameter([2, 3]) }, (g, v) => g.op(op, [v.x]));
      });
    }
  });

  describe('shape operators', () => {
    it('Reshape [2,3,4] -> [4,-1]', async () => {
      await checkOperator({ x: parameter([2, 3, 4]) }, (g, v) => g.op('Reshape', [v.x, g.constInt64([4, -1])]));
    });
    it('Reshape [rows,3,4] -> [4,-1], its input shape known by name only', async () => {
      await checkOperator({ x: symbolic(['rows', 3, 4], [2, 3, 4]) }, (g, v) => g.op('Reshape', [v.x, g.constInt64([4, -1])]));
    });
    it('Squeeze [2,1,3] on axis 1', async () => {
      await checkOperator({ x: parameter([2, 1, 3]) }, (g, v) => g.op('Squeeze', [v.x, g.constInt64([1])]));
    });
    it('Unsqueeze [2,3] on axes 0 and -1', async () => {
      await checkOperator({ x: parameter([2, 3]) }, (g, v) => g.op('Unsqueeze', [v.x, g.constInt64([0, -1])]));
    });
    for (const [dims, perm] of [[[2, 3, 4], [2, 0, 1]], [[2, 3, 2, 4], [0, 2, 1, 3]], [[2, 3, 4, 5], [3, 1, 0, 2]]]) {
      it(`Transpose [${dims}] with perm [${perm}]`, async () => {
        await checkOperator({ x: parameter(dims) }, (g, v) => g.op('Transpose', [v.x], { attributes: { perm } }));
      });
    }
    it('Split [2,3,6] into 2+1+3 on axis 2, every output used', async () => {
      await checkOperator({ x: parameter([2, 3, 6]) }, (g, v) => g.opMulti('Split', [v.x, g.constInt64([2, 1, 3])], 3, { attributes: { axis: 2 } }));
    });
    it('Split [2,6] into 2+4 on axis 1 with the first output unused: zero gradient there', async () => {
      const { gradients } = await checkOperator({ x: parameter([2, 6]) }, (g, v) => g.opMulti('Split', [v.x, g.constInt64([2, 4])], 2, { attributes: { axis: 1 } })[1]);
      const dx = gradients.get('x')!;
      assert.ok([0, 1, 6, 7].every((i) => dx[i] === 0));
      assert.ok([2, 3, 4, 5, 8, 9, 10, 11].every((i) => dx[i] !== 0));
    });
    it('Concat of [2,3], a fixed [2,1] and [2,2] on axis 1', async () => {
      await checkOperator({ a: parameter([2, 3]), c: fixed([2, 1]), b: parameter([2, 2]) }, (g, v) => g.op('Concat', [v.a, v.c, v.b], { attributes: { axis: 1 } }));
    });
    it('Concat of [1,2,3] and [2,2,3] on axis -3', async () => {
      await checkOperator({ a: parameter([1, 2, 3]), b: parameter([2, 2, 3]) }, (g, v) => g.op('Concat', [v.a, v.b], { attributes: { axis: -3 } }));
    });
  });

  describe('linear algebra', () => {
    it('MatMul [2,3,4] x [4,5] (a 2-D weight broadcast over the batch)', async () => {
      await checkOperator({ a: parameter([2, 3, 4]), w: parameter([4, 5]) }, (g, v) => g.op('MatMul', [v.a, v.w]));
    });
    it('MatMul [3,4] x [4,5]', async () => {
      await checkOperator({ a: parameter([3, 4]), w: parameter([4, 5]) }, (g, v) => g.op('MatMul', [v.a, v.w]));
    });
    it('MatMul [2,2,3,4] x [2,2,4,5] (batched)', async () => {
      await checkOperator({ a: parameter([2, 2, 3, 4]), b: parameter([2, 2, 4, 5]) }, (g, v) => g.op('MatMul', [v.a, v.b]));
    });
    it('MatMul [2,3,4] x [2,4,5] (batched, one batch axis)', async () => {
      await checkOperator({ a: parameter([2, 3, 4]), b: parameter([2, 4, 5]) }, (g, v) => g.op('MatMul', [v.a, v.b]));
    });
    it('Gemm transB = 1, no bias', async () => {
      await checkOperator({ a: parameter([3, 4]), b: parameter([5, 4]) }, (g, v) => g.op('Gemm', [v.a, v.b], { attributes: { transB: 1 } }));
    });
    it('Gemm transB = 0 with a bias [5]', async () => {
      await checkOperator({ a: parameter([3, 4]), b: parameter([4, 5]), c: parameter([5]) }, (g, v) => g.op('Gemm', [v.a, v.b, v.c]));
    });
    it('Gemm transB = 1 with a bias [3,1]', async () => {
      await checkOperator({ a: parameter([3, 4]), b: parameter([5, 4]), c: parameter([3, 1]) }, (g, v) => g.op('Gemm', [v.a, v.b, v.c], { attributes: { transB: 1 } }));
    });
  });

  describe('Gemm with alpha, beta, transA and transB, against a plain float64 reference', () => {
    interface GemmCase {
      readonly transA: number;
      readonly transB: number;
      readonly alpha: number;
      readonly beta: number;
      readonly cDims?: readonly number[];
    }
    const [M, K, N] = [3, 4, 2];
    const cases: GemmCase[] = [
      { transA: 0, transB: 0, alpha: 0.3, beta: -1.7, cDims: [M, N] },
      { transA: 1, transB: 0, alpha: -2.5, beta: 0.6, cDims: [N] },
      { transA: 0, transB: 1, alpha: 1.9, beta: 0.3, cDims: [M, 1] },
      { transA: 1, transB: 1, alpha: 0.45, beta: 3.1, cDims: [] },
      { transA: 1, transB: 1, alpha: -0.7, beta: 2 },
    ];
    for (const { transA, transB, alpha, beta, cDims } of cases) {
      it(`transA ${transA}, transB ${transB}, alpha ${alpha}, beta ${beta}, C ${cDims ? `[${cDims}]` : 'absent'}`, async () => {
        const operands: Record<string, Operand> = { a: parameter(transA ? [K, M] : [M, K]), b: parameter(transB ? [N, K] : [K, N]) };
        if (cDims) operands.c = parameter(cDims);
        const { loss, gradients, weights } = await checkOperator(operands, (g, v) =>
          g.op('Gemm', cDims ? [v.a, v.b, v.c] : [v.a, v.b], { attributes: { transA, transB, alpha: { float: alpha }, beta: { float: beta } } }),
        );
        const reference = gemmReference(
          { a: operands.a.data as Float64Array, b: operands.b.data as Float64Array, c: cDims && { dims: cDims, data: operands.c.data as Float64Array } },
          { transA, transB, alpha, beta, m: M, k: K, n: N },
          weights[0],
        );
        const near = (x: number, y: number) => Math.abs(x - y) <= 1e-12 * Math.max(1, Math.abs(y));
        assert.ok(near(loss, reference.loss), `loss ${loss}, reference ${reference.loss}`);
        for (const [name, expected] of Object.entries(reference.gradients)) {
          const actual = gradients.get(name)!;
          assert.ok(expected.every((value, i) => near(actual[i], value)), `d${name}: ${Array.from(actual)} vs the reference ${Array.from(expected)}`);
        }
      });
    }
  });

  describe('indexing', () => {
    it('Gather: an embedding batch with a repeated token id accumulates every use of its row', async () => {
      const ids = [1, 3, 1, 4, 1, 0]; // token 1 three times, token 2 never
      const { gradients, weights } = await checkOperator({ wte: parameter([5, 3]), ids: int64([2, 3], ids) }, (g, v) => g.op('Gather', [v.wte, v.ids], { attributes: { axis: 0 } }));
      const dWte = gradients.get('wte')!;
      const r = weights[0]; // dY = R, [2,3,3]
      for (let d = 0; d < 3; d++) {
        assert.ok(Math.abs(dWte[1 * 3 + d] - (r[0 * 3 + d] + r[2 * 3 + d] + r[4 * 3 + d])) < 1e-12, 'row 1 sums its three uses');
        assert.equal(dWte[2 * 3 + d], 0, 'row 2 is never looked up');
      }
    });
    it('GatherElements on axis 1 with repeated indices', async () => {
      const indices = [0, 0, 2, 3, 1, 3, 2, 2, 2];
      const { gradients, weights } = await checkOperator({ x: parameter([3, 4]), i: int64([3, 3], indices) }, (g, v) => g.op('GatherElements', [v.x, v.i], { attributes: { axis: 1 } }));
      const [dx, r] = [gradients.get('x')!, weights[0]];
      assert.ok(Math.abs(dx[2 * 4 + 2] - (r[6] + r[7] + r[8])) < 1e-12, 'x[2][2], picked three times, gets all three');
      assert.equal(dx[2 * 4 + 0], 0);
    });
    it('GatherElements on axis 0 with repeated indices', async () => {
      await checkOperator({ x: parameter([3, 2]), i: int64([4, 2], [0, 2, 0, 2, 1, 1, 0, 0]) }, (g, v) => g.op('GatherElements', [v.x, v.i], { attributes: { axis: 0 } }));
    });
    it('GatherND: (row, column) pairs pick rows of a batch, one of them twice', async () => {
      // the training loss's pick: positions [K, 2] of a (B, T, C) batch give (K, C)
      const positions = [0, 1, 1, 2, 0, 1, 1, 0];
      const { gradients, weights } = await checkOperator({ x: parameter([2, 3, 2]), p: int64([4, 2], positions) }, (g, v) => g.op('GatherND', [v.x, v.p]));
      const [dx, r] = [gradients.get('x')!, weights[0]]; // dY = R, [4, 2]
      for (let d = 0; d < 2; d++) {
        assert.ok(Math.abs(dx[(0 * 3 + 1) * 2 + d] - (r[0 * 2 + d] + r[2 * 2 + d])) < 1e-12, 'x[0][1], picked twice, gets both');
        assert.equal(dx[(0 * 3 + 0) * 2 + d], 0, 'x[0][0] is never picked');
      }
    });
  });

  describe('normalization and probabilities', () => {
    it('LayerNormalization over the last axis: input, scale and bias', async () => {
      await checkOperator({ x: parameter([2, 3, 4]), scale: parameter([4]), bias: parameter([4]) }, (g, v) =>
        g.op('LayerNormalization', [v.x, v.scale, v.bias], { attributes: { axis: -1, epsilon: { float: 1e-5 } } }),
      );
    });
    for (const op of ['Softmax', 'LogSoftmax']) {
      it(`${op} on axis -1`, async () => {
        await checkOperator({ x: parameter([2, 3, 4]) }, (g, v) => g.op(op, [v.x], { attributes: { axis: -1 } }));
      });
    }
    for (const [axes, keepdims] of [[[1], 1], [[1], 0], [[0, -1], 0], [[-3, 2], 1]] as const) {
      it(`ReduceSum over axes [${axes}] with keepdims ${keepdims}`, async () => {
        await checkOperator({ x: parameter([2, 3, 4]) }, (g, v) => g.op('ReduceSum', [v.x, g.constInt64([...axes])], { attributes: { keepdims } }));
      });
    }
    it('ReduceSum over every axis (no axes input), keepdims 1', async () => {
      await checkOperator({ x: parameter([2, 3, 4]) }, (g, v) => g.op('ReduceSum', [v.x], { attributes: { keepdims: 1 } }));
    });
  });

  describe('the backward pass', () => {
    it('sums the contributions of a value used several times', async () => {
      // y = tanh(x) * x + tanh(x) + x * x: x feeds three nodes, Mul(x, x) twice over
      await checkOperator({ x: parameter([2, 3]) }, (g, v) => {
        const t = g.op('Tanh', [v.x]);
        return g.op('Add', [g.op('Add', [g.op('Mul', [t, v.x]), t]), g.op('Mul', [v.x, v.x])]);
      });
    });
    it('a weight shared by two MatMuls gets both gradients', async () => {
      await checkOperator({ a: parameter([2, 3, 4]), w: parameter([4, 4]) }, (g, v) => g.op('MatMul', [g.op('Tanh', [g.op('MatMul', [v.a, v.w])]), v.w]));
    });
    it('a parameter the loss does not use gets a zero gradient', async () => {
      const { gradients } = await checkOperator({ x: parameter([2, 3]), unused: parameter([3, 2]), sideways: parameter([2]) }, (g, v) => {
        g.output(g.op('Tanh', [v.sideways]), 'side', g.floatType, [2]); // used by the graph, not by the loss
        return g.op('Neg', [v.x]);
      });
      assert.ok(gradients.get('unused')!.every((d) => d === 0));
      assert.ok(gradients.get('sideways')!.every((d) => d === 0));
    });
    it('an operator without a rule fails with a ModelError naming it', () => {
      assert.equal(GRADIENT_RULES.Floor, undefined);
      const g = new GraphBuilder('no-rule', 'float64');
      const x = g.input('x', 'float64', [3]);
      const loss = g.op('ReduceSum', [g.op('Floor', [x])], { attributes: { keepdims: 0 } });
      assert.throws(() => buildBackward(g, loss, [x]), (error: unknown) => error instanceof ModelError && /\bFloor\b/.test(error.message));
    });
    it('a loss that does not depend on the parameters fails with a ModelError', () => {
      const g = new GraphBuilder('unrelated', 'float64');
      const x = g.input('x', 'float64', [3]);
      const other = g.input('other', 'float64', [3]);
      const loss = g.op('ReduceSum', [other], { attributes: { keepdims: 0 } });
      assert.throws(() => buildBackward(g, loss, [x]), (error: unknown) => error instanceof ModelError && error.message.includes(loss.name));
    });
  });

  describe('a rule that breaks its contract fails naming the operator, the node and the input', () => {
    const brokenWith = (op: string, rule: GradientRule) => ({ ...GRADIENT_RULES, [op]: rule });
    const corrupt = (pattern: RegExp) => (error: unknown) => {
      assert.ok(error instanceof ModelError && error.code === 'MODEL_CORRUPT', String(error));
      assert.match(error.message, pattern);
      return true;
    };

    it('fewer gradients than inputs', () => {
      const g = new GraphBuilder('too-few', 'float64');
      const [a, b] = [g.input('a', 'float64', [2, 3]), g.input('b', 'float64', [2, 3])];
      const loss = g.op('ReduceSum', [g.op('Mul', [a, b])], { attributes: { keepdims: 0 } });
      const onlyFirst: GradientRule = (c) => [c.g.op('Mul', [c.dOutputs[0], c.inputs[1]])];
      assert.throws(
        () => buildBackward(g, loss, [a, b], brokenWith('Mul', onlyFirst)),
        corrupt(/^the gradient rule for Mul \(node Mul\) returned 1 gradients for 2 inputs \[a, b\]; a rule returns one per input, null where none flows$/),
      );
    });

    it('more gradients than inputs', () => {
      const g = new GraphBuilder('too-many', 'float64');
      const x = g.input('x', 'float64', [3]);
      const loss = g.op('ReduceSum', [g.op('Tanh', [x])], { attributes: { keepdims: 0 } });
      const extra: GradientRule = (c) => [...GRADIENT_RULES.Tanh(c), null];
      assert.throws(() => buildBackward(g, loss, [x], brokenWith('Tanh', extra)), corrupt(/Tanh \(node Tanh\) returned 2 gradients for 1 inputs \[x\]/));
    });

    it('a gradient for an optional input the node omits', () => {
      const g = new GraphBuilder('omitted', 'float64');
      const [a, b] = [g.input('a', 'float64', [3, 4]), g.input('b', 'float64', [4, 5])];
      const loss = g.op('ReduceSum', [g.op('Gemm', [a, b, null])], { attributes: { keepdims: 0 } });
      const biasToo: GradientRule = (c) => [...GRADIENT_RULES.Gemm(c).slice(0, 2), c.dOutputs[0]];
      assert.throws(() => buildBackward(g, loss, [a, b], brokenWith('Gemm', biasToo)), corrupt(/Gemm \(node Gemm\) returned a gradient for input 2, which the node omits/));
    });

    it('a gradient of the wrong dims (a Transpose rule that forgets to transpose back), with a symbolic batch', () => {
      const g = new GraphBuilder('wrong-dims', 'float64');
      const x = g.input('x', 'float64', ['batch', 3, 4]);
      const loss = g.op('ReduceSum', [g.op('Tanh', [g.op('Transpose', [x], { attributes: { perm: [0, 2, 1] } })])], { attributes: { keepdims: 0 } });
      const untransposed: GradientRule = (c) => [c.dOutputs[0]];
      assert.throws(
        () => buildBackward(g, loss, [x], brokenWith('Transpose', untransposed)),
        corrupt(/^the gradient rule for Transpose \(node Transpose\) returned a gradient of dims \[batch, 4, 3\] for input 0 "x" of dims \[batch, 3, 4\]$/),
      );
    });

    it('a gradient of the wrong rank (a ReduceSum rule that does not broadcast back)', () => {
      const g = new GraphBuilder('wrong-rank', 'float64');
      const x = g.input('x', 'float64', [2, 3, 4]);
      const rows = g.op('ReduceSum', [x, g.constInt64([1])], { attributes: { keepdims: 0 } });
      const loss = g.op('ReduceSum', [g.op('Tanh', [rows])], { attributes: { keepdims: 0 } });
      // the loss's own ReduceSum (no axes input) keeps the real rule
      const notBroadcast: GradientRule = (c) => (c.inputs.length === 2 ? [c.dOutputs[0], null] : GRADIENT_RULES.ReduceSum(c));
      assert.throws(
        () => buildBackward(g, loss, [x], brokenWith('ReduceSum', notBroadcast)),
        corrupt(/ReduceSum \(node ReduceSum\) returned a gradient of dims \[2, 4\] for input 0 "x" of dims \[2, 3, 4\]/),
      );
    });
  });

  describe('masked cross-entropy, as tunebot writes it', () => {
    const [N, V] = [4, 6];
    const targets = [2, 5, 0, 2];
    /** mean over unmasked rows of -log softmax(logits)[target]; mask and count are not parameters. */
    const maskedCrossEntropy = (g: GraphBuilder, v: Values) => {
      const logProbabilities = g.op('LogSoftmax', [v.logits], { attributes: { axis: -1 } });
      const picked = g.op('GatherElements', [logProbabilities, v.targets], { attributes: { axis: 1 } }); // (N, 1)
      const total = g.op('ReduceSum', [g.op('Mul', [g.op('Neg', [picked]), v.mask])], { attributes: { keepdims: 0 } });
      const tokens = g.op('Max', [g.op('ReduceSum', [v.mask], { attributes: { keepdims: 0 } }), g.constFloat(1)]);
      return g.op('Div', [total, tokens]);
    };
    const operands = (mask: number[]) => ({ logits: parameter([N, V]), targets: int64([N, 1], targets), mask: fixed([N, 1], mask) });

    it('d loss / d logits matches finite differences, and is softmax - onehot on unmasked rows', async () => {
      const inputs = operands([1, 0, 1, 1]);
      const { loss, gradients } = await checkGradients(inputs, maskedCrossEntropy);
      const logits = inputs.logits.data as Float64Array;
      const dLogits = gradients.get('logits')!;
      let expectedLoss = 0;
      for (let n = 0; n < N; n++) {
        const row = logits.subarray(n * V, (n + 1) * V);
        const logSum = Math.log(row.reduce((s, x) => s + Math.exp(x), 0));
        const rowMask = [1, 0, 1, 1][n];
        expectedLoss += (rowMask * (logSum - row[targets[n]])) / 3;
        for (let k = 0; k < V; k++) {
          const expected = (rowMask * (Math.exp(row[k] - logSum) - (k === targets[n] ? 1 : 0))) / 3;
          assert.ok(Math.abs(dLogits[n * V + k] - expected) < 1e-12, `dlogits[${n}][${k}]`);
        }
      }
      assert.ok(Math.abs(loss - expectedLoss) < 1e-12);
    });
    it('an all-zero mask gives loss 0 and zero gradients, without NaN', async () => {
      const { loss, gradients } = await checkGradients(operands([0, 0, 0, 0]), maskedCrossEntropy);
      assert.equal(loss, 0);
      assert.ok(gradients.get('logits')!.every((d) => d === 0));
    });
  });
});

describe('FastGelu (com.microsoft, float only) against the derivative of gelu_new in float64', () => {
  it('dX = dY * gelu\'(X) within float32 rounding', async () => {
    const geluNew = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    const xs = Float32Array.from({ length: 64 }, (_, i) => (i - 32) / 8); // -4 .. 3.875, both tails and the bend
    const weights = Float32Array.from(xs, (_, i) => Math.cos(i));
    const g = new GraphBuilder('fast-gelu', 'float32');
    const x = g.input('x', 'float32', [xs.length]);
    const loss = g.op('ReduceSum', [g.op('Mul', [g.op('FastGelu', [x], { domain: 'com.microsoft' }), g.constFloat([...weights], [xs.length])])], { attributes: { keepdims: 0 } });
    const gradients = buildBackward(g, loss, [x]);
    g.output(gradients.get('x')!, 'dx', 'float32', [xs.length]);
    const session = await ort.InferenceSession.create(encodeModel(g.build()));
    try {
      const dx = (await session.run({ x: new ort.Tensor('float32', xs, [xs.length]) })).dx.data as Float32Array;
      const h = 1e-5;
      xs.forEach((value, i) => {
        const expected = (weights[i] * (geluNew(value + h) - geluNew(value - h))) / (2 * h);
        assert.ok(Math.abs(dx[i] - expected) <= 1e-5 + 1e-5 * Math.abs(expected), `x = ${value}: ${dx[i]} vs ${expected}`);
      });
    } finally {
      await session.release();
    }
  });
});
