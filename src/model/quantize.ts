import { ModelError } from './errors.js';
import type { Float32Tensor } from './tensor.js';

/**
 * Block-wise weight quantization for ONNX Runtime's com.microsoft MatMulNBits, which computes
 * Y = A @ dequantize(B)^T with dequantize(q) = (q - zero_point) * scale per block of
 * `blockSize` consecutive inputs (along K) of one output column. Batch-1 decode streams every
 * weight once per token, so 8 or 4 bits per weight instead of 32 cut the bytes that bound it.
 *
 * Asymmetric (min/max with a zero point per block): its step is (max - min) / (2^bits - 1),
 * never coarser than the symmetric step 2 * max|w| / (2^bits - 1), and finer whenever a block's
 * weights lean to one side; the zero point costs one byte (8 bits) or half a byte (4 bits) per
 * block of 32. Every value round-trips within half a step: |w - dequantize(quantize(w))| <= scale / 2.
 */
export const WEIGHT_TYPES = ['float32', 'int8', 'int4'] as const;
export type WeightType = (typeof WEIGHT_TYPES)[number];

/** The widths used here; ONNX Runtime 1.30's CPU kernel runs both fast at accuracy_level 4 (gpt2-graph.ts). */
export type QuantizedBits = 4 | 8;

export const DEFAULT_BLOCK_SIZE = 32;

/** MatMulNBits's inputs for one weight matrix of K inputs and N outputs. */
export interface QuantizedMatrix {
  readonly k: number;
  readonly n: number;
  readonly bits: QuantizedBits;
  readonly blockSize: number;
  /** B: [N, kBlocks, blockSize * bits / 8], codes packed low bits first along K. */
  readonly data: Uint8Array;
  /** [N * kBlocks], block b of output n at n * kBlocks + b. */
  readonly scales: Float32Array;
  /** [N, ceil(kBlocks * bits / 8)], packed as B is. */
  readonly zeroPoints: Uint8Array;
}

/**
 * How a matrix is stored: `inputs-outputs` is GPT-2's Conv1D [K, N] (x @ W); `outputs-inputs`
 * is [N, K], as the tied head's wte [V, C] is read (x @ wte^T).
 */
export type MatrixLayout = 'inputs-outputs' | 'outputs-inputs';

/** Checks a weight-type setting from config or a caller; anything else is OPTIONS_INVALID. */
export function parseWeightType(value: unknown): WeightType {
  if (typeof value === 'string' && (WEIGHT_TYPES as readonly string[]).includes(value)) return value as WeightType;
  throw new ModelError('OPTIONS_INVALID', `model weights must be one of ${WEIGHT_TYPES.join(', ')}; got ${JSON.stringify(value)}`);
}

/** Bits per weight of a quantized weight type, null for float32. */
export function weightBits(type: WeightType): QuantizedBits | null {
  return type === 'int8' ? 8 : type === 'int4' ? 4 : null;
}

export function kBlocks(k: number, blockSize: number): number {
  return Math.ceil(k / blockSize);
}

export function quantizeMatrix(weight: Float32Tensor, layout: MatrixLayout, bits: QuantizedBits, blockSize = DEFAULT_BLOCK_SIZE): QuantizedMatrix {
  if (bits !== 4 && bits !== 8) throw new ModelError('OPTIONS_INVALID', `quantized weights take 4 or 8 bits; got ${String(bits)}`);
  if (!Number.isInteger(blockSize) || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
    throw new ModelError('OPTIONS_INVALID', `the quantization block size must be a power of two >= 16 (MatMulNBits); got ${blockSize}`);
  }
  if (weight.dims.length !== 2) throw new ModelError('OPTIONS_INVALID', `only matrices are quantized; got dims [${weight.dims.join(', ')}]`);
  const [k, n] = layout === 'inputs-outputs' ? weight.dims : [weight.dims[1], weight.dims[0]];
  const at = layout === 'inputs-outputs' ? (row: number, column: number) => weight.data[row * n + column] : (row: number, column: number) => weight.data[column * k + row];
  const blocks = kBlocks(k, blockSize);
  const blobSize = (blockSize * bits) / 8;
  const zeroPointRowBytes = Math.ceil((blocks * bits) / 8);
  const maxCode = 2 ** bits - 1;
  const data = new Uint8Array(n * blocks * blobSize);
  const scales = new Float32Array(n * blocks);
  const zeroPoints = new Uint8Array(n * zeroPointRowBytes);
  // Packs `code` as the `index`-th value of `bytes` from `offset`, low bits first.
  const pack = (bytes: Uint8Array, offset: number, index: number, code: number) => {
    if (bits === 8) bytes[offset + index] = code;
    else bytes[offset + (index >> 1)] |= (index & 1) === 0 ? code : code << 4;
  };

  for (let column = 0; column < n; column++) {
    for (let block = 0; block < blocks; block++) {
      const first = block * blockSize;
      const end = Math.min(first + blockSize, k);
      // The range includes 0, so the zero point stays in [0, maxCode]; an all-zero block gets scale 0.
      let low = 0;
      let high = 0;
      for (let row = first; row < end; row++) {
        const value = at(row, column);
        if (value < low) low = value;
        if (value > high) high = value;
      }
      const scale = Math.fround((high - low) / maxCode);
      const zeroPoint = scale === 0 ? 0 : Math.min(maxCode, Math.max(0, Math.round(-low / scale)));
      scales[column * blocks + block] = scale;
      pack(zeroPoints, column * zeroPointRowBytes, block, zeroPoint);
      const blob = (column * blocks + block) * blobSize;
      // Past K (a last, partial block) the codes are the zero point: they dequantize to 0.
      for (let index = 0; index < blockSize; index++) {
        const row = first + index;
        const code = row < end && scale > 0 ? Math.min(maxCode, Math.max(0, Math.round(at(row, column) / scale) + zeroPoint)) : zeroPoint;
        pack(data, blob, index, code);
      }
    }
  }
  return { k, n, bits, blockSize, data, scales, zeroPoints };
}
