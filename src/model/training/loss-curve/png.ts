import { deflateSync } from 'node:zlib';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const BYTES_PER_PIXEL = 3;

/** CRC-32 (ISO 3309, polynomial 0xEDB88320), one entry per byte value. */
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** length, type, data, CRC over type and data. */
function chunk(type: string, data: Uint8Array): Buffer {
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

function paeth(left: number, up: number, upLeft: number): number {
  const estimate = left + up - upLeft;
  const toLeft = Math.abs(estimate - left);
  const toUp = Math.abs(estimate - up);
  const toUpLeft = Math.abs(estimate - upLeft);
  if (toLeft <= toUp && toLeft <= toUpLeft) return left;
  return toUp <= toUpLeft ? up : upLeft;
}

/**
 * Filters each scanline with whichever of None, Sub, Up and Paeth gives the smallest sum of
 * signed residuals (the PNG specification's suggested heuristic): flat areas and straight
 * lines then deflate to almost nothing.
 */
function filterScanlines(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const stride = width * BYTES_PER_PIXEL;
  const out = new Uint8Array(height * (stride + 1));
  const candidate = new Uint8Array(stride);
  const zeroRow = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = rgb.subarray(y * stride, (y + 1) * stride);
    const above = y > 0 ? rgb.subarray((y - 1) * stride, y * stride) : zeroRow;
    let bestCost = Infinity;
    const target = out.subarray(y * (stride + 1), (y + 1) * (stride + 1));
    for (const filter of [0, 1, 2, 4]) {
      let cost = 0;
      for (let i = 0; i < stride; i++) {
        const left = i >= BYTES_PER_PIXEL ? row[i - BYTES_PER_PIXEL] : 0;
        const upLeft = i >= BYTES_PER_PIXEL ? above[i - BYTES_PER_PIXEL] : 0;
        const predicted = filter === 0 ? 0 : filter === 1 ? left : filter === 2 ? above[i] : paeth(left, above[i], upLeft);
        const residual = (row[i] - predicted) & 0xff;
        candidate[i] = residual;
        cost += residual < 128 ? residual : 256 - residual;
      }
      if (cost < bestCost) {
        bestCost = cost;
        target[0] = filter;
        target.set(candidate, 1);
      }
    }
  }
  return out;
}

/** An 8-bit RGB PNG (colour type 2, no interlace) from row-major RGB bytes. */
export function encodePngRgb(rgb: Uint8Array, width: number, height: number): Buffer {
  if (rgb.length !== width * height * BYTES_PER_PIXEL) {
    throw new RangeError(`RGB data has ${rgb.length} bytes; ${width}x${height} needs ${width * height * BYTES_PER_PIXEL}`);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: truecolour
  header[10] = 0; // compression: deflate
  header[11] = 0; // filter method: adaptive
  header[12] = 0; // no interlace
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(filterScanlines(rgb, width, height))),
    chunk('IEND', new Uint8Array(0)),
  ]);
}
