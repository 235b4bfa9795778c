import { open } from 'node:fs/promises';
import { ModelError } from '../errors.js';
import { type WeightMap, elementCount } from '../tensor.js';

/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}},
 * padded with spaces), then one byte buffer that the tensors cover without holes or overlaps.
 */

const METADATA_KEY = '__metadata__';
// The reference implementation refuses headers above 100 MB; a larger value means a corrupt length.
const MAX_HEADER_BYTES = 100_000_000;
// A single fs read or write is limited to 2 GiB; large tensors move in pieces.
const IO_CHUNK_BYTES = 64 * 1024 * 1024;

const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};
const READABLE_DTYPES = ['F32', 'F16', 'BF16'];

interface HeaderEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function corrupt(path: string, problem: string): ModelError {
  return new ModelError('MODEL_CORRUPT', `${path} is not a valid safetensors file: ${problem}`);
}

export async function readSafetensors(path: string): Promise<{ tensors: WeightMap; metadata: Record<string, string> }> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ModelError('MODEL_NOT_FOUND', `${path} does not exist`, { cause: error });
    }
    throw error;
  }
  try {
    const fileBytes = (await handle.stat()).size;
    if (fileBytes < 8) throw corrupt(path, `file is ${fileBytes} bytes, shorter than the 8-byte header length`);
    const lengthBytes = Buffer.alloc(8);
    await readFully(handle, lengthBytes, 0);
    const headerBytes = Number(lengthBytes.readBigUInt64LE(0));
    if (headerBytes > fileBytes - 8 || headerBytes > MAX_HEADER_BYTES) {
      throw corrupt(path, `header length ${headerBytes} exceeds the ${fileBytes - 8} bytes that follow it`);
    }
    const headerText = Buffer.alloc(headerBytes);
    await readFully(handle, headerText, 8);
    const dataBytes = fileBytes - 8 - headerBytes;
    const { entries, metadata } = parseHeader(path, headerText.toString('utf8'), dataBytes);

    // One buffer for the whole data region, starting at offset 0, so that every F32 tensor at
    // a 4-byte-aligned offset becomes a view instead of a copy.
    const data = new Uint8Array(dataBytes);
    await readFully(handle, data, 8 + headerBytes);
    const tensors: WeightMap = new Map();
    for (const entry of entries) {
      tensors.set(entry.name, { dims: entry.shape, data: decodeFloats(entry.dtype, data.subarray(entry.begin, entry.end)) });
    }
    return { tensors, metadata };
  } finally {
    await handle.close();
  }
}

function parseHeader(
  path: string,
  text: string,
  dataBytes: number,
): { entries: HeaderEntry[]; metadata: Record<string, string> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw corrupt(path, `header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw corrupt(path, 'header is not a JSON object');
  }
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw corrupt(path, '__metadata__ is not an object of strings');
      }
      for (const [key, item] of Object.entries(value)) {
        if (typeof item !== 'string') throw corrupt(path, `__metadata__.${key} is not a string`);
        metadata[key] = item;
      }
      continue;
    }
    entries.push(parseEntry(path, name, value, dataBytes));
  }

  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: HeaderEntry | undefined;
  for (const entry of byOffset) {
    if (entry.begin < covered) {
      throw corrupt(path, `tensors ${previous?.name} and ${entry.name} overlap (bytes ${entry.begin}..${covered})`);
    }
    if (entry.begin > covered) throw corrupt(path, `bytes ${covered}..${entry.begin} of the data belong to no tensor`);
    covered = entry.end;
    previous = entry;
  }
  if (covered !== dataBytes) {
    throw corrupt(path, `the data holds ${dataBytes} bytes but the tensors cover ${covered}`);
  }
  return { entries, metadata };
}

function parseEntry(path: string, name: string, value: unknown, dataBytes: number): HeaderEntry {
  if (typeof value !== 'object' || value === null) throw corrupt(path, `entry ${name} is not an object`);
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
    throw corrupt(path, `tensor ${name} has unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!READABLE_DTYPES.includes(dtype)) {
    throw corrupt(path, `tensor ${name} has dtype ${dtype}; only ${READABLE_DTYPES.join(', ')} weights can be read`);
  }
  const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw corrupt(path, `tensor ${name} has shape ${JSON.stringify(shape)}, expected an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw corrupt(path, `tensor ${name} has data_offsets ${JSON.stringify(offsets)}, expected [begin, end]`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > dataBytes) {
    throw corrupt(path, `tensor ${name} has data_offsets [${begin}, ${end}] outside the ${dataBytes} data bytes (truncated file?)`);
  }
  const expected = elementCount(shape) * DTYPE_BYTES[dtype];
  if (end - begin !== expected) {
    throw corrupt(path, `tensor ${name} spans ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected}`);
  }
  return { name, dtype, shape, begin, end };
}

function decodeFloats(dtype: string, bytes: Uint8Array): Float32Array {
  if (dtype === 'F32') {
    if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    return new Float32Array(new Uint8Array(bytes).buffer);
  }
  const halves = new Uint16Array(new Uint8Array(bytes).buffer);
  return dtype === 'F16' ? float16ToFloat32(halves) : bfloat16ToFloat32(halves);
}

/** IEEE 754 half precision (as bit patterns) to float32, subnormals, infinities and NaN included. */
export function float16ToFloat32(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) {
    const h = halves[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) out[i] = sign * fraction * 2 ** -24;
    else if (exponent === 0x1f) out[i] = fraction ? NaN : sign * Infinity;
    else out[i] = sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }
  return out;
}

/** bfloat16 is the upper half of a float32, so widening is a shift. */
export function bfloat16ToFloat32(halves: Uint16Array): Float32Array {
  const bits = new Uint32Array(halves.length);
  for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  return new Float32Array(bits.buffer);
}

/**
 * Writes F32 tensors in the map's order. The header goes first, then each tensor's bytes
 * straight from its Float32Array, so no second copy of the weights is built.
 */
export async function writeSafetensors(path: string, tensors: WeightMap, metadata?: Record<string, string>): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const [name, tensor] of tensors) {
    if (name === METADATA_KEY) throw new ModelError('WEIGHTS_MISMATCH', `"${METADATA_KEY}" cannot be a tensor name`);
    if (tensor.data.length !== elementCount(tensor.dims)) {
      throw new ModelError(
        'WEIGHTS_MISMATCH',
        `tensor ${name} holds ${tensor.data.length} values for shape ${JSON.stringify(tensor.dims)}`,
      );
    }
    header[name] = { dtype: 'F32', shape: tensor.dims, data_offsets: [offset, offset + tensor.data.byteLength] };
    offset += tensor.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerBytes = Math.ceil(json.length / 8) * 8;
  const prefix = Buffer.alloc(8 + headerBytes, 0x20);
  prefix.writeBigUInt64LE(BigInt(headerBytes), 0);
  json.copy(prefix, 8);

  const handle = await open(path, 'w');
  try {
    await writeFully(handle, prefix);
    for (const tensor of tensors.values()) {
      await writeFully(handle, new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
    }
  } finally {
    await handle.close();
  }
}

type FileHandle = Awaited<ReturnType<typeof open>>;

async function readFully(handle: FileHandle, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(IO_CHUNK_BYTES, target.length - done);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) throw new ModelError('MODEL_CORRUPT', `file ended after ${position + done} bytes while reading`);
    done += bytesRead;
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, Math.min(IO_CHUNK_BYTES, bytes.length - done));
    done += bytesWritten;
  }
}
