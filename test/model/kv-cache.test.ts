import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchKvCache, type SequenceCache } from '../../src/model/kv-cache.js';

const LAYERS = 2;
const ROW = 3; // H * D
type Which = 'keys' | 'values';

// Every element gets its own integer (exact in float32), so a row that lands in the wrong
// column, slot, layer or buffer shows up as a wrong number.
function element(sequence: number, layer: number, which: Which, column: number, e: number): number {
  return sequence * 100_000 + layer * 10_000 + (which === 'values' ? 5_000 : 0) + column * ROW + e + 1;
}

function row(sequence: number, layer: number, which: Which, column: number): number[] {
  return Array.from({ length: ROW }, (_, e) => element(sequence, layer, which, column, e));
}

/** A prefill's cache: rows [length, ROW] per layer. */
function prefilled(sequence: number, length: number): SequenceCache {
  const rows = (which: Which) =>
    Array.from({ length: LAYERS }, (_, layer) => Float32Array.from({ length: length * ROW }, (_, i) => element(sequence, layer, which, Math.floor(i / ROW), i % ROW)));
  return { length, keys: rows('keys'), values: rows('values') };
}

/** One decode step's new.N.key/value: [1, B, ROW] per layer, slot s holding column `columns[s]` of `sequences[s]`. */
function stepRows(sequences: readonly number[], columns: readonly number[]): { keys: Float32Array[]; values: Float32Array[] } {
  const rows = (which: Which) =>
    Array.from({ length: LAYERS }, (_, layer) => Float32Array.from(sequences.flatMap((sequence, slot) => row(sequence, layer, which, columns[slot]))));
  return { keys: rows('keys'), values: rows('values') };
}

/** What slot `slot` holds in the past feed [width, B, ROW], one row per column. */
function slotRows(cache: BatchKvCache, layer: number, which: Which, slot: number): number[][] {
  const past = cache.past(layer, which);
  return Array.from({ length: cache.width }, (_, column) => {
    const offset = (column * cache.batchSize + slot) * ROW;
    return Array.from(past.subarray(offset, offset + ROW));
  });
}

/**
 * Checks the whole layout: `sequences[slot]` holds `lengths[slot]` tokens, right-aligned, and the
 * padding before them is zero. Zero and not merely masked: a masked key still goes through the
 * MatMul before the mask is added, and a NaN there would poison the row.
 */
function assertLayout(cache: BatchKvCache, sequences: readonly number[], lengths: readonly number[]): void {
  const width = Math.max(0, ...lengths);
  assert.equal(cache.batchSize, sequences.length);
  assert.equal(cache.width, width);
  assert.equal(cache.past(0, 'keys').length, width * sequences.length * ROW, 'the past feed is exactly the filled prefix');
  sequences.forEach((sequence, slot) => {
    assert.equal(cache.sequenceLength(slot), lengths[slot], `slot ${slot} length`);
    const padding = width - lengths[slot];
    for (let layer = 0; layer < LAYERS; layer++) {
      for (const which of ['keys', 'values'] as const) {
        const expected = Array.from({ length: width }, (_, column) =>
          column < padding ? new Array<number>(ROW).fill(0) : row(sequence, layer, which, column - padding),
        );
        assert.deepEqual(slotRows(cache, layer, which, slot), expected, `slot ${slot} (sequence ${sequence}), layer ${layer}, ${which}`);
      }
    }
  });
}

/** The mask rows as arrays of 0/1 numbers. */
function maskRows(cache: BatchKvCache): number[][] {
  const mask = cache.nextAttentionMask();
  const columns = cache.width + 1;
  assert.equal(mask.length, cache.batchSize * columns);
  return Array.from({ length: cache.batchSize }, (_, slot) => Array.from(mask.subarray(slot * columns, (slot + 1) * columns), Number));
}

describe('BatchKvCache', () => {
  it('starts empty', () => {
    const cache = new BatchKvCache(LAYERS, ROW, 64);
    assertLayout(cache, [], []);
    assert.deepEqual(maskRows(cache), []);
  });

  it('right-aligns sequences of different lengths as they join', () => {
    const cache = new BatchKvCache(LAYERS, ROW, 64);
    assert.equal(cache.join(prefilled(1, 3)), 0);
    assertLayout(cache, [1], [3]);
    assert.equal(cache.join(prefilled(2, 5)), 1);
    assertLayout(cache, [1, 2], [3, 5]);
    assert.equal(cache.join(prefilled(3, 1)), 2);
    assertLayout(cache, [1, 2, 3], [3, 5, 1]);
  });

  it('masks exactly the padding columns, plus one column for the next token', () => {
    const cache = new BatchKvCache(LAYERS, ROW, 64);
    cache.join(prefilled(1, 3));
    cache.join(prefilled(2, 5));
    cache.join(prefilled(3, 1));
    assert.deepEqual(maskRows(cache), [
      [0, 0, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 1],
      [0, 0, 0, 0, 1, 1],
    ]);
  });

  it('appends one column for every slot', () => {
    const cache = new BatchKvCache(LAYERS, ROW, 64);
    cache.join(prefilled(1, 2));
    cache.join(prefilled(2, 4));
    const step = stepRows([1, 2], [2, 4]);
    cache.append(step.keys, step.values);
    assertLayout(cache, [1, 2], [3, 5]);
    assert.deepEqual(maskRows(cache), [
      [0, 0, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 1],
    ]);
  });

  it('a sequence joining after decode steps lines up with the others', () => {
    const cache = new BatchKvCache(LAYERS, ROW, 64);
    cache.join(prefilled(1, 2));
    for (let column = 2; column < 6; column++) {
      const step = stepRows([1], [column]);
      cache.append(step.keys, step.values);
    }
    cache.join(prefilled(2, 3));
    assertLayout(cache, [1, 2], [6, 3]);
    const step = stepRows([1, 2], [6, 3]);
    cache.append(step.keys, step.values);
    assertLayout(cache, [1, 2], [7, 4]);
  });

  it('leave drops the slot, moves later slots down and drops padding nobody needs', () => {
    const cache = new BatchKvCache(LAYERS, ROW, 64);
    cache.join(prefilled(1, 2));
    cache.join(prefilled(2, 6));
    cache.join(prefilled(3, 4));
    cache.leave(1);
    assertLayout(cache, [1, 3], [2, 4]);
    assert.deepEqual(maskRows(cache), [
      [0, 0, 1, 1, 1],
      [1, 1, 1, 1, 1],
    ]);
    cache.leave(0);
    assertLayout(cache, [3], [4]);
    assert.deepEqual(maskRows(cache), [[1, 1, 1, 1, 1]]);
    cache.leave(0);
    assertLayout(cache, [], []);
    cache.join(prefilled(4, 2));
    assertLayout(cache, [4], [2]);
  });

  it('keeps every row while it grows past its initial capacity', () => {
    const cache = new BatchKvCache(LAYERS, ROW, 128);
    cache.join(prefilled(1, 3));
    cache.join(prefilled(2, 1));
    // 3 + 60 columns crosses every power of two from 16 to 64.
    for (let step = 0; step < 60; step++) {
      const rows = stepRows([1, 2], [3 + step, 1 + step]);
      cache.append(rows.keys, rows.values);
    }
    assertLayout(cache, [1, 2], [63, 61]);
  });

  it('fills up to maxLength and then refuses to append', () => {
    const cache = new BatchKvCache(LAYERS, ROW, 8);
    cache.join(prefilled(1, 6));
    cache.join(prefilled(2, 2));
    for (let step = 0; step < 2; step++) {
      const rows = stepRows([1, 2], [6 + step, 2 + step]);
      cache.append(rows.keys, rows.values);
    }
    assertLayout(cache, [1, 2], [8, 4]);
    const rows = stepRows([1, 2], [8, 4]);
    assert.throws(() => cache.append(rows.keys, rows.values), (error: unknown) => error instanceof RangeError && /8 positions/.test(error.message));
    assertLayout(cache, [1, 2], [8, 4]);
  });
});
