import { type FloatType, GraphBuilder, type Graph, type Value } from '../onnx/graph.js';
import { gradientName, type TrainableParameter } from './train-graph.js';

/**
 * One optimizer step for every trainable parameter, in one graph (PyTorch's AdamW):
 *   norm = sqrt(sum of all squared gradients); g = g * min(1, clip / norm) when clip > 0
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p = p * (1 - lr * wd)  [decayed parameters only]
 *   p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Inputs: each parameter p, m.p, v.p, grad.p and the scalars below; outputs: new.p, new.m.p,
 * new.v.p and grad_norm (before clipping).
 */
export const ADAMW_SCALARS = ['learning_rate', 'beta1', 'beta2', 'epsilon', 'weight_decay', 'clip_norm', 'step'] as const;
export type AdamWScalar = (typeof ADAMW_SCALARS)[number];

export const momentName = (parameter: string) => `m.${parameter}`;
export const varianceName = (parameter: string) => `v.${parameter}`;
export const updatedName = (name: string) => `new.${name}`;

export function buildAdamWGraph(parameters: readonly TrainableParameter[], floatType: FloatType = 'float32'): Graph {
  const g = new GraphBuilder('adamw', floatType);
  const scalar = Object.fromEntries(ADAMW_SCALARS.map((name) => [name, g.input(name, floatType, [])])) as Record<AdamWScalar, Value>;
  const state = parameters.map((parameter) => ({
    parameter,
    value: g.input(parameter.name, floatType, parameter.dims),
    moment: g.input(momentName(parameter.name), floatType, parameter.dims),
    variance: g.input(varianceName(parameter.name), floatType, parameter.dims),
    gradient: g.input(gradientName(parameter.name), floatType, parameter.dims),
  }));

  const one = g.constFloat(1);
  const squares = state.map(({ gradient }) => g.op('ReduceSum', [g.op('Mul', [gradient, gradient])], { attributes: { keepdims: 0 } }));
  const norm = g.op('Sqrt', [squares.length === 1 ? squares[0] : g.op('Sum', squares)]);
  const clipping = g.op('And', [g.op('Greater', [scalar.clip_norm, g.constFloat(0)]), g.op('Greater', [norm, scalar.clip_norm])]);
  const gradientScale = g.op('Where', [clipping, g.op('Div', [scalar.clip_norm, norm]), one]);

  // Everything that is one number per step is folded into scalars, so each parameter sees
  // few full-size operations: the clip scale into the moment coefficients, the bias
  // corrections into the step size and the variance factor.
  const oneMinus = (x: Value) => g.op('Sub', [one, x]);
  const momentCoefficient = g.op('Mul', [oneMinus(scalar.beta1), gradientScale]); // (1 - b1) * scale
  const varianceCoefficient = g.op('Mul', [oneMinus(scalar.beta2), g.op('Mul', [gradientScale, gradientScale])]); // (1 - b2) * scale^2
  const stepSize = g.op('Div', [scalar.learning_rate, oneMinus(g.op('Pow', [scalar.beta1, scalar.step]))]); // lr / (1 - b1^t)
  const varianceScale = g.op('Reciprocal', [oneMinus(g.op('Pow', [scalar.beta2, scalar.step]))]); // 1 / (1 - b2^t)
  const decayFactor = oneMinus(g.op('Mul', [scalar.learning_rate, scalar.weight_decay]));

  for (const { parameter, value, moment, variance, gradient } of state) {
    g.scoped(parameter.name, () => {
      const named = (name: string) => ({ outputName: updatedName(name) });
      const newMoment = g.op('Add', [g.op('Mul', [moment, scalar.beta1]), g.op('Mul', [gradient, momentCoefficient])], named(momentName(parameter.name)));
      const squared = g.op('Mul', [gradient, gradient]);
      const newVariance = g.op('Add', [g.op('Mul', [variance, scalar.beta2]), g.op('Mul', [squared, varianceCoefficient])], named(varianceName(parameter.name)));
      const denominator = g.op('Add', [g.op('Sqrt', [g.op('Mul', [newVariance, varianceScale])]), scalar.epsilon]);
      const update = g.op('Mul', [g.op('Div', [newMoment, denominator]), stepSize]);
      const decayed = parameter.decay ? g.op('Mul', [value, decayFactor]) : value;
      const newValue = g.op('Sub', [decayed, update], named(parameter.name));
      g.output(newValue, updatedName(parameter.name), floatType, parameter.dims);
      g.output(newMoment, updatedName(momentName(parameter.name)), floatType, parameter.dims);
      g.output(newVariance, updatedName(varianceName(parameter.name)), floatType, parameter.dims);
    });
  }
  g.output(norm, 'grad_norm', floatType, []);
  return g.build();
}
