/**
 * AdamW (PyTorch's, with decoupled weight decay) over one tensor, in place:
 *   g = g * gradientScale                  [the global-norm clip factor, found beforehand]
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p = p * (1 - lr * wd)                  [tensors with decay only]
 *   p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * A plain loop rather than an ONNX Runtime graph, as llm.c does it: the update is a few
 * operations per element, bound by memory, and a graph's outputs come back from
 * onnxruntime-node as new buffers (1.5 GB per step at 124M, with the page faults and the
 * garbage that go with them), while this pass writes the arrays it reads and allocates nothing.
 */
export type FloatArray = Float32Array | Float64Array;

/** One trainable tensor as the optimizer sees it: four arrays of one length. */
export interface OptimizedTensor {
  readonly parameter: FloatArray;
  readonly moment: FloatArray;
  readonly variance: FloatArray;
  readonly gradient: FloatArray;
  /** AdamW's decoupled weight decay applies to it. */
  readonly decay: boolean;
}

export interface AdamWStep {
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  /** The factor every gradient is multiplied by first (global-norm clipping; 1 leaves them). */
  readonly gradientScale: number;
  /** AdamW's t: 1 on the first step. */
  readonly step: number;
}

export function adamwUpdate(tensor: OptimizedTensor, step: AdamWStep): void {
  const { parameter, moment, variance, gradient } = tensor;
  const { beta1, beta2, epsilon, gradientScale } = step;
  // One number per step is folded into each coefficient, so the loop does few operations.
  const momentCoefficient = (1 - beta1) * gradientScale;
  const varianceCoefficient = (1 - beta2) * gradientScale * gradientScale;
  const stepSize = step.learningRate / (1 - beta1 ** step.step);
  const varianceScale = 1 / (1 - beta2 ** step.step);
  const decayFactor = tensor.decay ? 1 - step.learningRate * step.weightDecay : 1;
  for (let i = 0; i < parameter.length; i++) {
    const g = gradient[i];
    const m = beta1 * moment[i] + momentCoefficient * g;
    const v = beta2 * variance[i] + varianceCoefficient * g * g;
    moment[i] = m;
    variance[i] = v;
    parameter[i] = parameter[i] * decayFactor - (stepSize * m) / (Math.sqrt(v * varianceScale) + epsilon);
  }
}
