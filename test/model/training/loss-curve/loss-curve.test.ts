import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ModelError } from '../../../../src/model/errors.js';
import { SeededRandom } from '../../../../src/model/random.js';
import { COLOURS, renderLossCurvePng, type LossPoint } from '../../../../src/model/training/loss-curve/loss-curve.js';
import { crc32, encodePngRgb } from '../../../../src/model/training/loss-curve/png.js';
import { decodePng, lineYAt, pixelsOf } from '../../../helpers/png-decode.js';

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
