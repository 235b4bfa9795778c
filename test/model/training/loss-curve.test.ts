import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inflateSync } from 'node:zlib';
import { ModelError } from '../../../src/model/errors.js';
import { SeededRandom } from '../../../src/model/random.js';
import { COLOURS, renderLossCurvePng, type LossPoint } from '../../../src/model/training/loss-curve.js';
import { crc32, encodePngRgb } from '../../../src/model/training/png.js';

/** Bit by bit, with no table, so it does not share a mistake with the encoder's. */
function referenceCrc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

interface DecodedImage {
  readonly width: number;
  readonly height: number;
  readonly rgb: Uint8Array;
  /** Each scanline's filter type. */
  readonly filters: readonly number[];
}

/** A decoder for 8-bit RGB, non-interlaced PNGs: checks the signature, every chunk's CRC and the chunk order, and undoes all five filters. */
function decodePng(png: Buffer): DecodedImage {
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

function pixelsOf(image: DecodedImage, [r, g, b]: readonly [number, number, number]): { x: number; y: number }[] {
  const found: { x: number; y: number }[] = [];
  for (let i = 0; i < image.rgb.length; i += 3) {
    if (image.rgb[i] === r && image.rgb[i + 1] === g && image.rgb[i + 2] === b) found.push({ x: (i / 3) % image.width, y: Math.floor(i / 3 / image.width) });
  }
  return found;
}

/** The mean y of the colour's pixels in column x. */
function lineYAt(pixels: readonly { x: number; y: number }[], x: number): number {
  const column = pixels.filter((pixel) => pixel.x === x);
  assert.ok(column.length > 0, `no line pixels in column ${x}`);
  return column.reduce((sum, pixel) => sum + pixel.y, 0) / column.length;
}

const falling: LossPoint[] = Array.from({ length: 200 }, (_, step) => ({ step, loss: 1 + 3 * Math.exp(-step / 40) }));

describe('PNG encoding', () => {
  it('computes the standard CRC-32', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  });

  it('round-trips an image whose rows favour different filters', () => {
    const [width, height] = [37, 23];
    const random = new SeededRandom(5);
    const rgb = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < 3; c++) {
          // Gradients, flat bands and noise, so None, Sub, Up and Paeth each win some rows.
          const value = y % 4 === 0 ? x * 7 + c : y % 4 === 1 ? y * 11 : y % 4 === 2 ? Math.floor(random.next() * 256) : x * 3 + y * 5 + c * 40;
          rgb[(y * width + x) * 3 + c] = value & 0xff;
        }
      }
    }
    const decoded = decodePng(encodePngRgb(rgb, width, height));
    assert.deepEqual(decoded.rgb, rgb);
    const filters = new Set(decoded.filters);
    assert.ok(filters.size >= 3, `expected several filter types, got ${[...filters].join(', ')}`);
  });
});

describe('renderLossCurvePng', () => {
  it('draws the training line and the validation points at the requested size', () => {
    const validation = [0, 50, 100, 150, 199].map((step) => ({ step, loss: 1.2 + 3 * Math.exp(-step / 40) }));
    const image = decodePng(renderLossCurvePng({ train: falling, validation }, { width: 640, height: 400, title: 'fine-tune' }));
    assert.equal(image.width, 640);
    assert.equal(image.height, 400);
    const train = pixelsOf(image, COLOURS.train);
    assert.ok(train.length > 500, `train line has ${train.length} pixels`);
    assert.ok(pixelsOf(image, COLOURS.validation).length > 50);
    assert.ok(pixelsOf(image, COLOURS.text).length > 200, 'labels are drawn');
    // The loss falls, so the line runs from the upper left to the lower right (y grows downwards).
    const xs = train.map((pixel) => pixel.x);
    assert.ok(lineYAt(train, Math.min(...xs) + 2) < lineYAt(train, Math.max(...xs) - 2));
  });

  it('is 800x500 by default, leaves out validation when there is none, and is deterministic', () => {
    const png = renderLossCurvePng({ train: falling });
    const image = decodePng(png);
    assert.equal(image.width, 800);
    assert.equal(image.height, 500);
    assert.equal(pixelsOf(image, COLOURS.validation).length, 0);
    assert.deepEqual(renderLossCurvePng({ train: falling }), png);
  });

  it('uses a log y axis when the loss spans more than two decades, a linear one otherwise', () => {
    // 100 -> 1 -> 0.01 is a straight line only on a log axis; 4 -> 2 -> 0 only on a linear one.
    const middleOffset = (train: LossPoint[]): number => {
      const pixels = pixelsOf(decodePng(renderLossCurvePng({ train })), COLOURS.train);
      const xs = pixels.map((pixel) => pixel.x);
      const [left, right] = [Math.min(...xs) + 3, Math.max(...xs) - 3];
      const middle = Math.round((left + right) / 2);
      return lineYAt(pixels, middle) - (lineYAt(pixels, left) + lineYAt(pixels, right)) / 2;
    };
    const steps = Array.from({ length: 101 }, (_, step) => step);
    assert.ok(Math.abs(middleOffset(steps.map((step) => ({ step, loss: 100 * 10 ** (-step / 25) })))) < 3);
    assert.ok(Math.abs(middleOffset(steps.map((step) => ({ step, loss: 4 - step / 25 })))) < 3);
    // The same exponential on a linear axis would sag far below the chord.
    assert.ok(middleOffset(steps.map((step) => ({ step, loss: 3 * 10 ** (-step / 100) }))) > 20);
  });

  it('skips NaN losses and says so in red', () => {
    const train = falling.map((point) => (point.step === 100 ? { ...point, loss: Number.NaN } : point));
    const image = decodePng(renderLossCurvePng({ train }));
    assert.ok(pixelsOf(image, COLOURS.train).length > 500);
    assert.ok(pixelsOf(image, COLOURS.warning).length > 50);
  });

  it('draws a "no data" picture when nothing is finite', () => {
    for (const curve of [{ train: [] }, { train: [{ step: 0, loss: Number.NaN }], validation: [{ step: 0, loss: Number.POSITIVE_INFINITY }] }]) {
      const image = decodePng(renderLossCurvePng(curve, { width: 400, height: 300 }));
      assert.equal(pixelsOf(image, COLOURS.train).length, 0);
      const text = pixelsOf(image, COLOURS.text);
      assert.ok(text.length > 20, 'the message is drawn');
      assert.ok(text.every((pixel) => Math.abs(pixel.x - 200) < 80 && Math.abs(pixel.y - 160) < 60), 'in the middle');
    }
  });

  it('rejects a non-finite step, a non-numeric loss and a size out of range', () => {
    const rejects = (run: () => unknown, pattern: RegExp) =>
      assert.throws(run, (error: unknown) => error instanceof ModelError && error.code === 'OPTIONS_INVALID' && pattern.test(error.message));
    rejects(() => renderLossCurvePng({ train: [{ step: Number.NaN, loss: 1 }] }), /train\[0\]\.step must be a finite number/);
    rejects(() => renderLossCurvePng({ train: [], validation: [{ step: 1, loss: '2' as unknown as number }] }), /validation\[0\]\.loss must be a number/);
    rejects(() => renderLossCurvePng({ train: falling }, { width: 100 }), /width must be an integer in \[240, 4096\]/);
    rejects(() => renderLossCurvePng({ train: falling }, { height: 5000 }), /height/);
  });
});
