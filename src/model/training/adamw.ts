/**
 * AdamW (PyTorch's, with decoupled weight decay) over one tensor, in place:
 *   g = g * gradientScale                  [the global-norm clip factor, found beforehand]
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p = p * (1 - lr * wd)                  [tensors with decay only]
 *   p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * In float32, by a WebAssembly SIMD kernel (adamw-kernel.ts), rather than an ONNX Runtime
 * graph: the update is a few operations per element, and a graph's outputs come back from
 * onnxruntime-node as new buffers (1.5 GB per step at 124M), while the kernel writes the
 * arrays it reads and allocates nothing. The four arrays of every trained tensor live in the
 * kernel's memory (allocateOptimizedArrays), where ONNX Runtime reads the parameters and
 * writes the gradients too, so a step copies none of them.
 */
import { ModelError } from '../errors.js';
import { type AdamWKernel, instantiateAdamWKernel } from './adamw-kernel.js';

/** The trained tensors' arrays by name, as allocateOptimizedArrays lays them out. */
export interface OptimizedArrays {
  readonly parameters: ReadonlyMap<string, Float32Array>;
  readonly moments: ReadonlyMap<string, Float32Array>;
  readonly variances: ReadonlyMap<string, Float32Array>;
  readonly gradients: ReadonlyMap<string, Float32Array>;
}

/** One trainable tensor as the optimizer sees it: four arrays of its length. */
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

const PAGE_BYTES = 65536;
/** A bank's most pages: every byte address stays a positive 32-bit integer. */
const BANK_PAGES = 32767;
/**
 * Each array starts on a cache line and takes a whole number of them; the kernel updates the
 * padding too (zeros stay zeros), so it goes four values at a time without a scalar tail.
 */
const ALIGN_VALUES = 16;

/** The kernel each allocated array is updated by, and the tensor's four arrays it belongs to. */
const owners = new WeakMap<Float32Array, { readonly kernel: AdamWKernel; readonly arrays: Omit<OptimizedTensor, 'decay'> }>();

/** Whether `array` lies in an optimizer bank (whose memory goes only with the bank). */
export function inOptimizerMemory(array: Float32Array): boolean {
  return owners.has(array);
}

/**
 * Zeroed arrays for each tensor, in WebAssembly memories ("banks", at most 2 GiB each: a
 * 124M model's 2 GB is one, gpt2-medium's 5.7 GB three) with an AdamW kernel of their own.
 * A bank's pages take resident memory only once written.
 */
export function allocateOptimizedArrays(tensors: readonly { readonly name: string; readonly length: number }[]): OptimizedArrays {
  const padded = (length: number) => Math.ceil(length / ALIGN_VALUES) * ALIGN_VALUES;
  const tensorBytes = (length: number) => 4 * 4 * padded(length);
  const banks: { name: string; length: number }[][] = [];
  let bankBytes = 0;
  for (const tensor of tensors) {
    const bytes = tensorBytes(tensor.length);
    if (bytes > BANK_PAGES * PAGE_BYTES) {
      throw new ModelError('OPTIONS_INVALID', `${tensor.name}: ${tensor.length} values are more than one optimizer bank holds (${(BANK_PAGES * PAGE_BYTES) / 16} values)`);
    }
    if (banks.length === 0 || bankBytes + bytes > BANK_PAGES * PAGE_BYTES) {
      banks.push([]);
      bankBytes = 0;
    }
    banks[banks.length - 1].push(tensor);
    bankBytes += bytes;
  }
  const allocated: Record<keyof OptimizedArrays, Map<string, Float32Array>> = { parameters: new Map(), moments: new Map(), variances: new Map(), gradients: new Map() };
  for (const bank of banks) {
    const pages = Math.max(1, Math.ceil(bank.reduce((sum, { length }) => sum + tensorBytes(length), 0) / PAGE_BYTES));
    const kernel = instantiateAdamWKernel(bankMemory(pages));
    let offset = 0;
    const take = (length: number) => {
      const array = new Float32Array(kernel.memory.buffer, offset, length);
      offset += 4 * padded(length);
      return array;
    };
    for (const { name, length } of bank) {
      const arrays = { parameter: take(length), moment: take(length), variance: take(length), gradient: take(length) };
      for (const array of Object.values(arrays)) owners.set(array, { kernel, arrays });
      allocated.parameters.set(name, arrays.parameter);
      allocated.moments.set(name, arrays.moment);
      allocated.variances.set(name, arrays.variance);
      allocated.gradients.set(name, arrays.gradient);
    }
  }
  return allocated;
}

/** The tensor `name` of `arrays`, as adamwUpdate takes it. */
export function optimizedTensor(arrays: OptimizedArrays, name: string, decay: boolean): OptimizedTensor {
  const [parameter, moment, variance, gradient] = [arrays.parameters, arrays.moments, arrays.variances, arrays.gradients].map((tensors) => tensors.get(name));
  if (!parameter || !moment || !variance || !gradient) throw new RangeError(`AdamW: no tensor ${name}`);
  return { parameter, moment, variance, gradient, decay };
}

function bankMemory(pages: number): WebAssembly.Memory {
  try {
    return new WebAssembly.Memory({ initial: pages, maximum: pages });
  } catch (error) {
    throw new ModelError('OUT_OF_MEMORY', `the optimizer's state could not be given ${((pages * PAGE_BYTES) / 1e9).toFixed(2)} GB of memory`, { cause: error });
  }
}

export function adamwUpdate(tensor: OptimizedTensor, step: AdamWStep): void {
  const owner = owners.get(tensor.parameter);
  if (!owner || owner.arrays.moment !== tensor.moment || owner.arrays.variance !== tensor.variance || owner.arrays.gradient !== tensor.gradient) {
    throw new RangeError('AdamW: the arrays are not one tensor of allocateOptimizedArrays');
  }
  const { beta1, beta2, epsilon, gradientScale } = step;
  // One number per step is folded into each coefficient, so the kernel does few operations.
  const momentCoefficient = (1 - beta1) * gradientScale;
  const varianceCoefficient = (1 - beta2) * gradientScale * gradientScale;
  const stepSize = step.learningRate / (1 - beta1 ** step.step);
  const varianceScale = 1 / (1 - beta2 ** step.step);
  const decayFactor = tensor.decay ? 1 - step.learningRate * step.weightDecay : 1;
  const { parameter, moment, variance, gradient } = tensor;
  owner.kernel.update(
    parameter.byteOffset, moment.byteOffset, variance.byteOffset, gradient.byteOffset, Math.ceil(parameter.length / 4) * 4,
    beta1, beta2, momentCoefficient, varianceCoefficient, stepSize, varianceScale, epsilon, decayFactor,
  );
}
