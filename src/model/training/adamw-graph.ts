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

  const oneMinus = (x: Value) => g.op('Sub', [one, x]);
  const momentCorrection = oneMinus(g.op('Pow', [scalar.beta1, scalar.step]));
  const varianceCorrection = oneMinus(g.op('Pow', [scalar.beta2, scalar.step]));
  const decayFactor = oneMinus(g.op('Mul', [scalar.learning_rate, scalar.weight_decay]));

  for (const { parameter, value, moment, variance, gradient } of state) {
    g.scoped(parameter.name, () => {
      const clipped = g.op('Mul', [gradient, gradientScale]);
      const newMoment = g.op('Add', [g.op('Mul', [scalar.beta1, moment]), g.op('Mul', [oneMinus(scalar.beta1), clipped])]);
      const newVariance = g.op('Add', [g.op('Mul', [scalar.beta2, variance]), g.op('Mul', [oneMinus(scalar.beta2), g.op('Mul', [clipped, clipped])])]);
      const denominator = g.op('Add', [g.op('Sqrt', [g.op('Div', [newVariance, varianceCorrection])]), scalar.epsilon]);
      const update = g.op('Mul', [scalar.learning_rate, g.op('Div', [g.op('Div', [newMoment, momentCorrection]), denominator])]);
      const decayed = parameter.decay ? g.op('Mul', [value, decayFactor]) : value;
      g.output(g.op('Sub', [decayed, update]), updatedName(parameter.name), floatType, parameter.dims);
      g.output(newMoment, updatedName(momentName(parameter.name)), floatType, parameter.dims);
      g.output(newVariance, updatedName(varianceName(parameter.name)), floatType, parameter.dims);
    });
  }
  g.output(norm, 'grad_norm', floatType, []);
  return g.build();
}
