import { ModelError } from '../errors.js';
import type { Value } from '../onnx/graph.js';
import type { InferredDim } from '../onnx/shape-inference.js';
import type { GradientContext, GradientRule } from './backward.js';

/**
 * One gradient rule per ONNX operator that tunebot's graphs use. Each rule states its
 * operator's forward in a comment and returns the gradients of the inputs, in input order.
 * Broadcasting operators sum their gradients back to each input's shape (sumToShapeOf).
 */

// ---- shapes -------------------------------------------------------------------------------

/**
 * Sums `gradient` over the axes along which `input` was broadcast, then gives it `input`'s
 * shape. Where shape inference knows both, that is nothing at all (same dims) or one ReduceSum
 * over axes fixed now; otherwise it is worked out at run time with shape operators, for any
 * rank and any runtime dims.
 */
export function sumToShapeOf(c: GradientContext, gradient: Value, input: Value): Value {
  const { g } = c;
  const [inputDims, gradientDims] = [c.dims(input), c.dims(gradient)];
  if (inputDims && gradientDims && sameDims(inputDims, gradientDims)) return gradient;
  const axes = inputDims && gradientDims ? broadcastAxes(inputDims, gradientDims) : undefined;
  if (axes) {
    const summed = axes.length === 0 ? gradient : g.op('ReduceSum', [gradient, g.constInt64(axes)], { attributes: { keepdims: 1 } });
    return g.op('Reshape', [summed, c.shapeOf(input)]);
  }
  const inputShape = c.shapeOf(input);
  const gradientShape = g.op('Shape', [gradient]);
  // Ranks as Shape(Shape(...)), not Size(Shape(...)): ONNX Runtime 1.30's shape inference takes
  // Size of a shape tensor for the element count of the shaped tensor (24 for [2,3,4], not 3),
  // and then rejects the Equal below whenever the dims are declared.
  const missing = g.op('Sub', [g.op('Shape', [gradientShape]), g.op('Shape', [inputShape])]); // [1]
  const ones = g.op('Expand', [g.constInt64([1]), missing]);
  const aligned = g.op('Concat', [ones, inputShape], { attributes: { axis: 0 } }); // input's shape, padded on the left with 1s
  const broadcastAxesNow = g.op('Squeeze', [g.op('NonZero', [g.op('Not', [g.op('Equal', [aligned, gradientShape])])]), g.constInt64([0])]);
  const summed = g.op('ReduceSum', [gradient, broadcastAxesNow], { attributes: { keepdims: 1, noop_with_empty_axes: 1 } });
  return g.op('Reshape', [summed, inputShape]);
}

/** Equal ranks and dims, each a known number or the same symbolic name. */
function sameDims(a: readonly InferredDim[], b: readonly InferredDim[]): boolean {
  return a.length === b.length && a.every((dim, i) => dim !== null && dim === b[i]);
}

/**
 * The axes of a gradient of dims `gradientDims` to sum for an input of dims `inputDims` that was
 * broadcast to them: the leading axes the input lacks, and those where it has 1 and the gradient
 * may not. Undefined where that cannot be decided before run time (a symbolic or unknown input
 * dim that the gradient's dim may differ from).
 */
function broadcastAxes(inputDims: readonly InferredDim[], gradientDims: readonly InferredDim[]): number[] | undefined {
  const offset = gradientDims.length - inputDims.length;
  if (offset < 0) return undefined;
  const axes = Array.from({ length: offset }, (_, axis) => axis);
  for (const [i, dim] of inputDims.entries()) {
    const along = gradientDims[offset + i];
    if (dim === 1) {
      if (along !== 1) axes.push(offset + i);
    } else if (dim === null || (typeof dim === 'string' && dim !== along)) {
      return undefined;
    }
  }
  return axes;
}

function zerosLike(c: GradientContext, value: Value): Value {
  return c.g.op('Expand', [c.g.constFloat(0), c.shapeOf(value)]);
}

function only(context: GradientContext, i: number, build: () => Value): Value | null {
  return context.needsGradient(i) ? build() : null;
}

/** The gradient of input 0 and none for the others (shapes, axes, split sizes, indices). */
function firstInputOnly(context: GradientContext, dX: Value | null): (Value | null)[] {
  return context.inputs.map((_, i) => (i === 0 ? dX : null));
}

function outputGradient(context: GradientContext, i = 0): Value {
  const gradient = context.dOutputs[i];
  if (!gradient) throw new ModelError('MODEL_CORRUPT', `${context.node.name}: output ${i} has no gradient`);
  return gradient;
}

// ---- elementwise --------------------------------------------------------------------------

/** Y = A + B (broadcast): dA = dY, dB = dY, each summed to its input's shape. */
const add: GradientRule = (c) => {
  const dY = outputGradient(c);
  return [only(c, 0, () => sumToShapeOf(c, dY, c.inputs[0])), only(c, 1, () => sumToShapeOf(c, dY, c.inputs[1]))];
};

/** Y = A - B: dA = dY, dB = -dY. */
const sub: GradientRule = (c) => {
  const dY = outputGradient(c);
  return [only(c, 0, () => sumToShapeOf(c, dY, c.inputs[0])), only(c, 1, () => c.g.op('Neg', [sumToShapeOf(c, dY, c.inputs[1])]))];
};

/** Y = A * B: dA = dY * B, dB = dY * A. */
const mul: GradientRule = (c) => {
  const dY = outputGradient(c);
  const [a, b] = c.inputs;
  return [only(c, 0, () => sumToShapeOf(c, c.g.op('Mul', [dY, b]), a)), only(c, 1, () => sumToShapeOf(c, c.g.op('Mul', [dY, a]), b))];
};

/** Y = A / B: dA = dY / B, dB = -dY * Y / B. */
const div: GradientRule = (c) => {
  const dY = outputGradient(c);
  const [a, b] = c.inputs;
  return [
    only(c, 0, () => sumToShapeOf(c, c.g.op('Div', [dY, b]), a)),
    only(c, 1, () => sumToShapeOf(c, c.g.op('Neg', [c.g.op('Div', [c.g.op('Mul', [dY, c.outputs[0]]), b])]), b)),
  ];
};

/** Y = -X. */
const neg: GradientRule = (c) => [c.g.op('Neg', [outputGradient(c)])];

/** Y = tanh(X): dX = dY * (1 - Y^2). */
const tanh: GradientRule = (c) => {
  const y = c.outputs[0];
  return [c.g.op('Mul', [outputGradient(c), c.g.op('Sub', [c.g.constFloat(1), c.g.op('Mul', [y, y])])])];
};

/** Y = X. */
const identity: GradientRule = (c) => [outputGradient(c)];

/** Y = Where(condition, A, B): the gradient goes to whichever side was chosen. */
const where: GradientRule = (c) => {
  const dY = outputGradient(c);
  const [condition, a, b] = c.inputs;
  const zero = c.g.constFloat(0);
  return [
    null,
    only(c, 1, () => sumToShapeOf(c, c.g.op('Where', [condition, dY, zero]), a)),
    only(c, 2, () => sumToShapeOf(c, c.g.op('Where', [condition, zero, dY]), b)),
  ];
};

// ---- shape operators ----------------------------------------------------------------------

/** Y = Reshape(X, shape): dX = Reshape(dY, Shape(X)). Squeeze and Unsqueeze are reshapes too. */
const reshape: GradientRule = (c) => firstInputOnly(c, c.g.op('Reshape', [outputGradient(c), c.shapeOf(c.inputs[0])]));

/** Y = Transpose(X, perm): dX = Transpose(dY, perm^-1). */
const transpose: GradientRule = (c) => {
  const perm = c.attribute<readonly number[]>('perm', []);
  if (perm.length === 0) throw new ModelError('MODEL_CORRUPT', `${c.node.name}: Transpose without perm is not differentiated`);
  const inverse = perm.map((_, axis) => perm.indexOf(axis));
  return [c.g.op('Transpose', [outputGradient(c)], { attributes: { perm: inverse } })];
};

/** [Y0, Y1, ...] = Split(X, sizes, axis): dX = Concat(dY0, dY1, ...), zeros where no gradient flows. */
const split: GradientRule = (c) => {
  const axis = c.attribute('axis', 0);
  const parts = c.outputs.map((output, i) => c.dOutputs[i] ?? zerosLike(c, output));
  return firstInputOnly(c, c.g.op('Concat', parts, { attributes: { axis } }));
};

/** Y = Concat(X0, X1, ..., axis): dXi = the slice of dY that Xi filled. */
const concat: GradientRule = (c) => {
  const axis = c.attribute('axis', 0);
  const dY = outputGradient(c);
  const axes = c.g.constInt64([axis]);
  let start = c.g.constInt64([0]);
  return c.inputs.map((input, i) => {
    const size = c.g.op('Gather', [c.shapeOf(input), c.g.constInt64([axis])], { attributes: { axis: 0 } });
    const end = c.g.op('Add', [start, size]);
    const gradient = c.needsGradient(i) ? c.g.op('Slice', [dY, start, end, axes]) : null;
    start = end;
    return gradient;
  });
};

// ---- linear algebra -----------------------------------------------------------------------

/**
 * Y = A @ B. A 2-D B (a weight [K, N]) broadcast over A's batch dims (A is [..., M, K]) gets
 * dB = A^T dY over all rows at once; otherwise both carry the same batch dims.
 */
const matMul: GradientRule = (c) => {
  const dY = outputGradient(c);
  const [a, b] = c.inputs;
  const bDims = c.dims(b);
  if (bDims?.length === 2 && typeof bDims[0] === 'number' && typeof bDims[1] === 'number') {
    const [k, n] = bDims;
    return [
      only(c, 0, () => c.g.op('MatMul', [dY, c.g.op('Transpose', [b], { attributes: { perm: [1, 0] } })])),
      only(c, 1, () => c.g.op('Gemm', [c.g.op('Reshape', [a, c.g.constInt64([-1, k])]), c.g.op('Reshape', [dY, c.g.constInt64([-1, n])])], { attributes: { transA: 1 } })),
    ];
  }
  // batched: Einsum's ellipsis covers any number of batch dims
  return [
    only(c, 0, () => c.g.op('Einsum', [dY, b], { attributes: { equation: '...mn,...kn->...mk' } })),
    only(c, 1, () => c.g.op('Einsum', [a, dY], { attributes: { equation: '...mk,...mn->...kn' } })),
  ];
};

/**
 * Y = alpha * A' @ B' + beta * C, where A' = A^T when transA = 1 (else A), B' likewise, and
 * C (optional) broadcasts to Y [M, N]. With dY [M, N]:
 *   dA' = alpha * dY @ B'^T   (dA is its transpose when transA = 1: alpha * B' @ dY^T)
 *   dB' = alpha * A'^T @ dY   (dB is its transpose when transB = 1: alpha * dY^T @ A')
 *   dC  = beta * dY, summed back to C's shape.
 * ONNX stores alpha and beta as float32, so dC is scaled by beta as the forward rounded it.
 */
const gemm: GradientRule = (c) => {
  const dY = outputGradient(c);
  const [a, b, bias] = c.inputs;
  const transA = c.attribute<number>('transA', 0);
  const transB = c.attribute<number>('transB', 0);
  const alpha = c.attribute<{ float: number }>('alpha', { float: 1 }).float;
  const beta = Math.fround(c.attribute<{ float: number }>('beta', { float: 1 }).float);
  const scaledGemm = (left: Value, right: Value, transposeLeft: number, transposeRight: number) =>
    c.g.op('Gemm', [left, right], { attributes: { transA: transposeLeft, transB: transposeRight, ...(alpha === 1 ? {} : { alpha: { float: alpha } }) } });
  return [
    only(c, 0, () => (transA ? scaledGemm(b, dY, transB, 1) : scaledGemm(dY, b, 0, 1 - transB))),
    only(c, 1, () => (transB ? scaledGemm(dY, a, 1, transA) : scaledGemm(a, dY, 1 - transA, 0))),
    ...(bias
      ? [only(c, 2, () => {
          const dC = sumToShapeOf(c, dY, bias);
          return beta === 1 ? dC : c.g.op('Mul', [dC, c.g.constFloat(beta)]);
        })]
      : []),
  ];
};

/**
 * Y = W[indices] along axis 0 (an embedding lookup): dW accumulates each row of dY into the
 * row its index picked, so a token id used twice gets both contributions (ScatterND, add).
 * The rows are added into W's gradient from later nodes where there is one (a tied output
 * projection), else into zeros.
 */
const gather: GradientRule = (c) => {
  if (c.attribute<number>('axis', 0) !== 0) throw new ModelError('MODEL_CORRUPT', `${c.node.name}: only Gather on axis 0 is differentiated`);
  return firstInputOnly(c, only(c, 0, () => scatterBack(c, c.g.op('Unsqueeze', [c.inputs[1], c.g.constInt64([-1])]))));
};

/** Y = GatherElements(X, indices, axis): dX scatters dY back (adding on repeats). */
const gatherElements: GradientRule = (c) => {
  const [data, indices] = c.inputs;
  return firstInputOnly(
    c,
    only(c, 0, () =>
      c.g.op('ScatterElements', [zerosLike(c, data), indices, outputGradient(c)], { attributes: { axis: c.attribute('axis', 0), reduction: 'add' } }),
    ),
  );
};

/**
 * Y = GatherND(X, indices) (batch_dims 0): each row of indices [..., k] picks a slice of X by
 * its first k coordinates; dX scatters dY back to those slices (adding where one is picked twice).
 */
const gatherND: GradientRule = (c) => {
  if (c.attribute<number>('batch_dims', 0) !== 0) throw new ModelError('MODEL_CORRUPT', `${c.node.name}: only GatherND with batch_dims 0 is differentiated`);
  return firstInputOnly(c, only(c, 0, () => scatterBack(c, c.inputs[1])));
};

/**
 * The gradient of a gather's data (input 0): dY's slices added back where GatherND-style
 * `indices` [..., k] picked them, into the gradient summed so far from later nodes or zeros.
 */
function scatterBack(c: GradientContext, indices: Value): Value {
  return c.g.op('ScatterND', [c.takeGradientSoFar(0) ?? zerosLike(c, c.inputs[0]), indices, outputGradient(c)], { attributes: { reduction: 'add' } });
}

// ---- normalization and probabilities -----------------------------------------------------

/**
 * Y = (X - mean) / sqrt(var + eps) * scale + bias over the last axis. Backward recomputes the
 * normalized input xhat and rstd (what llm.c saves from the forward):
 *   dbias = sum dY, dscale = sum dY * xhat, dX = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
 */
const layerNormalization: GradientRule = (c) => {
  if (c.attribute<number>('axis', -1) !== -1) throw new ModelError('MODEL_CORRUPT', `${c.node.name}: only LayerNormalization over the last axis is differentiated`);
  const { g } = c;
  const epsilon = c.attribute<{ float: number }>('epsilon', { float: 1e-5 }).float;
  const dY = outputGradient(c);
  const [x, scale, bias] = c.inputs;
  // opset 17's ReduceMean takes its axes as an attribute (ReduceSum's moved to an input in 13)
  const mean = (t: Value) => g.op('ReduceMean', [t], { attributes: { axes: [-1], keepdims: 1 } });
  const centered = g.op('Sub', [x, mean(x)]);
  const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [mean(g.op('Mul', [centered, centered])), g.constFloat(epsilon)])])]);
  const xhat = g.op('Mul', [centered, rstd]);
  const dxhat = g.op('Mul', [dY, scale]);
  return [
    only(c, 0, () => g.op('Mul', [rstd, g.op('Sub', [g.op('Sub', [dxhat, mean(dxhat)]), g.op('Mul', [xhat, mean(g.op('Mul', [dxhat, xhat]))])])])),
    only(c, 1, () => sumToShapeOf(c, g.op('Mul', [dY, xhat]), scale)),
    ...(bias ? [only(c, 2, () => sumToShapeOf(c, dY, bias))] : []),
  ];
};

/** Y = softmax(X) along axis: dX = Y * (dY - sum(dY * Y)). */
const softmax: GradientRule = (c) => {
  const y = c.outputs[0];
  const dY = outputGradient(c);
  const sum = c.g.op('ReduceSum', [c.g.op('Mul', [dY, y]), c.g.constInt64([c.attribute('axis', -1)])], { attributes: { keepdims: 1 } });
  return [c.g.op('Mul', [y, c.g.op('Sub', [dY, sum])])];
};

/** Y = log softmax(X) along axis: dX = dY - exp(Y) * sum(dY). */
const logSoftmax: GradientRule = (c) => {
  const dY = outputGradient(c);
  const sum = c.g.op('ReduceSum', [dY, c.g.constInt64([c.attribute('axis', -1)])], { attributes: { keepdims: 1 } });
  return [c.g.op('Sub', [dY, c.g.op('Mul', [c.g.op('Exp', [c.outputs[0]]), sum])])];
};

/**
 * L = SoftmaxCrossEntropyLoss(scores [N, C], labels [N]), reduction sum or none (L [N]), rows
 * whose label is ignore_index left out: dScores = (softmax(scores) - onehot(labels)) * dL per
 * row, 0 on ignored rows. The one-hot is subtracted by a scatter into the softmax, so the
 * gradient takes two tensors of the scores' size where LogSoftmax's and GatherElements's rules
 * take six (at 124M, 4 x 256 tokens, each is 200 MB).
 */
const softmaxCrossEntropyLoss: GradientRule = (c) => {
  const [scores, labels, classWeights] = c.inputs;
  const reduction = c.attribute<string>('reduction', 'mean');
  if (classWeights || (reduction !== 'sum' && reduction !== 'none') || c.dOutputs[1]) {
    throw new ModelError('MODEL_CORRUPT', `${c.node.name}: only SoftmaxCrossEntropyLoss without class weights, with reduction sum or none and no log_prob gradient, is differentiated`);
  }
  const { g } = c;
  const dL = outputGradient(c);
  let labelsToScatter = labels;
  let perRow = reduction === 'none' ? dL : g.op('Expand', [dL, g.op('Shape', [labels])]);
  if ('ignore_index' in c.node.attributes) {
    const ignored = g.op('Equal', [labels, g.constInt64(c.attribute<number>('ignore_index', 0))]);
    labelsToScatter = g.op('Where', [ignored, g.constInt64(0), labels]);
    perRow = g.op('Where', [ignored, g.constFloat(0), perRow]);
  }
  const indices = g.op('Unsqueeze', [labelsToScatter, g.constInt64([1])]); // [N, 1]
  const minusOneHot = g.op('Expand', [g.constFloat(-1), g.op('Shape', [indices])]);
  const softmaxMinusOneHot = g.op('ScatterElements', [g.op('Softmax', [scores], { attributes: { axis: 1 } }), indices, minusOneHot], {
    attributes: { axis: 1, reduction: 'add' },
  });
  return firstInputOnly(c, only(c, 0, () => g.op('Mul', [softmaxMinusOneHot, g.op('Unsqueeze', [perRow, g.constInt64([1])])])));
};

/**
 * Y = FastGelu(X) (com.microsoft, no bias) = 0.5 X (1 + tanh(u)), u = k (X + a X^3), k = sqrt(2/pi),
 * a = 0.044715: dX = dY (0.5 (1 + t) + 0.5 X (1 - t^2) k (1 + 3 a X^2)), t = tanh(u), recomputed
 * from X here so the forward leaves only X for the backward.
 */
const fastGelu: GradientRule = (c) => {
  const [x, bias] = c.inputs;
  if (c.node.domain !== 'com.microsoft' || bias) throw new ModelError('MODEL_CORRUPT', `${c.node.name}: only com.microsoft FastGelu without a bias is differentiated`);
  const { g } = c;
  const a = 0.044715;
  const k = Math.sqrt(2 / Math.PI);
  const half = g.constFloat(0.5);
  const squared = g.op('Mul', [x, x]);
  const u = g.op('Mul', [g.op('Add', [x, g.op('Mul', [g.op('Mul', [squared, x]), g.constFloat(a)])]), g.constFloat(k)]);
  const t = g.op('Tanh', [u]);
  const du = g.op('Mul', [g.op('Add', [g.op('Mul', [squared, g.constFloat(3 * a)]), g.constFloat(1)]), g.constFloat(k)]); // du/dX
  const slope = g.op('Add', [
    g.op('Mul', [g.op('Add', [t, g.constFloat(1)]), half]),
    g.op('Mul', [g.op('Mul', [g.op('Mul', [x, half]), g.op('Sub', [g.constFloat(1), g.op('Mul', [t, t])])]), du]),
  ]);
  return [only(c, 0, () => g.op('Mul', [outputGradient(c), slope]))];
};

/** Y = ReduceSum(X, axes): dX = dY broadcast back over the reduced axes. */
const reduceSum: GradientRule = (c) => {
  let dY = outputGradient(c);
  const axes = c.inputs[1];
  if (c.attribute<number>('keepdims', 1) === 0 && axes) dY = c.g.op('Unsqueeze', [dY, axes]);
  return firstInputOnly(c, c.g.op('Expand', [dY, c.shapeOf(c.inputs[0])]));
};

export const GRADIENT_RULES: Readonly<Record<string, GradientRule>> = {
  Add: add,
  Sub: sub,
  Mul: mul,
  Div: div,
  Neg: neg,
  Tanh: tanh,
  Identity: identity,
  Where: where,
  Reshape: reshape,
  Squeeze: reshape,
  Unsqueeze: reshape,
  Transpose: transpose,
  Split: split,
  Concat: concat,
  MatMul: matMul,
  Gemm: gemm,
  Gather: gather,
  GatherElements: gatherElements,
  GatherND: gatherND,
  LayerNormalization: layerNormalization,
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  SoftmaxCrossEntropyLoss: softmaxCrossEntropyLoss,
  FastGelu: fastGelu,
  ReduceSum: reduceSum,
};
