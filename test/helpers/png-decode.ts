import assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';

/**
 * A PNG reader for the tests of the project's own encoder and charts, written apart from the
 * encoder (src/model/training/loss-curve/png.ts) so that the two do not share a mistake.
 */

/** Bit by bit, with no table, so it does not share a mistake with the encoder's. */
function referenceCrc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

export interface DecodedImage {
  readonly width: number;
  readonly height: number;
  readonly rgb: Uint8Array;
  /** Each scanline's filter type. */
  readonly filters: readonly number[];
}

/** A decoder for 8-bit RGB, non-interlaced PNGs: checks the signature, every chunk's CRC and the chunk order, and undoes all five filters. */
export function decodePng(png: Buffer): DecodedImage {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  const chunks: { type: string; data: Buffer }[] = [];
  for (let offset = 8; offset < png.length; ) {
    const length = png.readUInt32BE(offset);
    const typeAndData = png.subarray(offset + 4, offset + 8 + length);
    assert.equal(png.readUInt32BE(offset + 8 + length), referenceCrc32(typeAndData), `CRC of chunk at ${offset}`);
    chunks.push({ type: typeAndData.subarray(0, 4).toString('latin1'), data: typeAndData.subarray(4) });
    offset += 12 + length;
  }
  assert.equal(chunks[0].type, 'IHDR');
  assert.equal(chunks.at(-1)?.type, 'IEND');
  const header = chunks[0].data;
  const width = header.readUInt32BE(0);
  const height = header.readUInt32BE(4);
  assert.deepEqual([...header.subarray(8)], [8, 2, 0, 0, 0], 'bit depth 8, truecolour, deflate, adaptive filters, no interlace');

  const raw = inflateSync(Buffer.concat(chunks.filter((chunk) => chunk.type === 'IDAT').map((chunk) => chunk.data)));
  const stride = width * 3;
  assert.equal(raw.length, height * (stride + 1));
  const rgb = new Uint8Array(height * stride);
  const filters: number[] = [];
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    filters.push(filter);
    for (let i = 0; i < stride; i++) {
      const value = raw[y * (stride + 1) + 1 + i];
      const left = i >= 3 ? rgb[y * stride + i - 3] : 0;
      const up = y > 0 ? rgb[(y - 1) * stride + i] : 0;
      const upLeft = i >= 3 && y > 0 ? rgb[(y - 1) * stride + i - 3] : 0;
      const estimate = left + up - upLeft;
      const [pa, pb, pc] = [Math.abs(estimate - left), Math.abs(estimate - up), Math.abs(estimate - upLeft)];
      const paeth = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      const predictors = [0, left, up, (left + up) >> 1, paeth];
      assert.ok(filter < predictors.length, `row ${y} has unknown filter ${filter}`);
      rgb[y * stride + i] = (value + predictors[filter]) & 0xff;
    }
  }
  return { width, height, rgb, filters };
}

export function pixelsOf(image: DecodedImage, [r, g, b]: readonly [number, number, number]): { x: number; y: number }[] {
  const found: { x: number; y: number }[] = [];
  for (let i = 0; i < image.rgb.length; i += 3) {
    if (image.rgb[i] === r && image.rgb[i + 1] === g && image.rgb[i + 2] === b) found.push({ x: (i / 3) % image.width, y: Math.floor(i / 3 / image.width) });
  }
  return found;
}

/** The mean y of the colour's pixels in column x. */
export function lineYAt(pixels: readonly { x: number; y: number }[], x: number): number {
  const column = pixels.filter((pixel) => pixel.x === x);
  assert.ok(column.length > 0, `no line pixels in column ${x}`);
  return column.reduce((sum, pixel) => sum + pixel.y, 0) / column.length;
}
