/**
 * AdamW (PyTorch's, with decoupled weight decay) over one tensor, in place:
 *   g = g * gradientScale                  [the global-norm clip factor, found beforehand]
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p = p * (1 - lr * wd)                  [tensors with decay only]
 *   p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * In float32, by a WebAssembly SIMD kernel (adamw-kernel.ts) over chunks copied into its
 * memory, rather than an ONNX Runtime graph: the update is a few operations per element, and a
 * graph's outputs come back from onnxruntime-node as new buffers (1.5 GB per step at 124M),
 * while this pass writes the arrays it reads and allocates nothing. The chunks stay in the
 * cache between the copy in, the update and the copy out.
 */
import { type AdamWKernel, CHUNK, instantiateAdamWKernel } from './adamw-kernel.js';

/** One trainable tensor as the optimizer sees it: four arrays of one length. */
export interface OptimizedTensor {
  readonly parameter: Float32Array;
  readonly moment: Float32Array;
  readonly variance: Float32Array;
  readonly gradient: Float32Array;
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

let kernel: AdamWKernel | undefined;

export function adamwUpdate(tensor: OptimizedTensor, step: AdamWStep): void {
  kernel ??= instantiateAdamWKernel();
  const { update, regions } = kernel;
  const { beta1, beta2, epsilon, gradientScale } = step;
  // One number per step is folded into each coefficient, so the kernel does few operations.
  const momentCoefficient = (1 - beta1) * gradientScale;
  const varianceCoefficient = (1 - beta2) * gradientScale * gradientScale;
  const stepSize = step.learningRate / (1 - beta1 ** step.step);
  const varianceScale = 1 / (1 - beta2 ** step.step);
  const decayFactor = tensor.decay ? 1 - step.learningRate * step.weightDecay : 1;
  const { length } = tensor.parameter;
  for (const array of [tensor.moment, tensor.variance, tensor.gradient]) {
    if (array.length !== length) throw new RangeError(`AdamW: arrays of ${array.length} and ${length} values`);
  }
  for (let start = 0; start < length; start += CHUNK) {
    const count = Math.min(CHUNK, length - start);
    const padded = Math.ceil(count / 4) * 4;
    for (const name of ['parameter', 'moment', 'variance', 'gradient'] as const) {
      regions[name].set(tensor[name].subarray(start, start + count));
      // The kernel takes elements in fours: the last chunk's are filled up with zeros, written nowhere.
      regions[name].fill(0, count, padded);
    }
    update(padded, beta1, beta2, momentCoefficient, varianceCoefficient, stepSize, varianceScale, epsilon, decayFactor);
    for (const name of ['parameter', 'moment', 'variance'] as const) tensor[name].set(regions[name].subarray(0, count), start);
  }
}
