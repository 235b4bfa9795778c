import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchKvCache, type SequenceCache } from '../../../src/model/runtime/kv-cache.js';

const LAYERS = 2;
const H = 2;
const D = 3;
/** Positions a test sequence may reach; only sizes the numbering below. */
const MAX_T = 256;
type Which = 'keys' | 'values';

// Every element of every sequence gets its own integer (a mixed-radix number, exact in float32),
// so a value that lands in the wrong column, head, slot, layer or buffer shows up as a wrong number.
function element(sequence: number, layer: number, which: Which, h: number, t: number, d: number): number {
  return ((((sequence * LAYERS + layer) * 2 + (which === 'values' ? 1 : 0)) * H + h) * MAX_T + t) * D + d + 1;
}

/** A prefill's cache: [H, T, D] per layer for keys and values. */
function prefilled(sequence: number, length: number): SequenceCache {
  const perLayer = (which: Which) =>
    Array.from({ length: LAYERS }, (_, layer) => {
      const data = new Float32Array(H * length * D);
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < length; t++) {
          for (let d = 0; d < D; d++) data[(h * length + t) * D + d] = element(sequence, layer, which, h, t, d);
        }
      }
      return data;
    });
  return { length, keys: perLayer('keys'), values: perLayer('values') };
}

/** One decode step's new.N.key/value, [B, H, 1, D] per layer: slot s holds position `positions[s]` of `sequences[s]`. */
function stepOutputs(sequences: readonly number[], positions: readonly number[]): { keys: Float32Array[]; values: Float32Array[] } {
  const perLayer = (which: Which) =>
    Array.from({ length: LAYERS }, (_, layer) => {
      const data = new Float32Array(sequences.length * H * D);
      sequences.forEach((sequence, slot) => {
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < D; d++) data[(slot * H + h) * D + d] = element(sequence, layer, which, h, positions[slot], d);
        }
      });
      return data;
    });
  return { keys: perLayer('keys'), values: perLayer('values') };
}

/** Runs `steps` decode steps for slots holding `sequences`, which start at `lengths`. */
function decode(cache: BatchKvCache, sequences: readonly number[], lengths: readonly number[], steps: number): void {
  for (let step = 0; step < steps; step++) {
    const outputs = stepOutputs(
      sequences,
      lengths.map((length) => length + step),
    );
    cache.append(outputs.keys, outputs.values);
  }
}

/**
 * The feeds the cache should hold, built element by element: past.N.key [B, H, D, P] and
 * past.N.value [B, H, P, D], slot s holding positions [0, lengths[s]) of sequences[s] and zeros
 * after. Zeros and not merely masked: a masked column still goes through the MatMuls before
 * the mask applies, and an Inf or NaN left there from an earlier sequence would poison the row.
 */
function expectedPast(sequences: readonly number[], lengths: readonly number[], P: number, layer: number, which: Which): number[] {
  const expected = new Array<number>(sequences.length * H * D * P).fill(0);
  sequences.forEach((sequence, s) => {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < lengths[s]; t++) {
        for (let d = 0; d < D; d++) {
          const index = which === 'keys' ? ((s * H + h) * D + d) * P + t : ((s * H + h) * P + t) * D + d;
          expected[index] = element(sequence, layer, which, h, t, d);
        }
      }
    }
  });
  return expected;
}

function assertLayout(cache: BatchKvCache, sequences: readonly number[], lengths: readonly number[], capacity: number): void {
  assert.equal(cache.batchSize, sequences.length, 'batch size');
  assert.equal(cache.capacity, capacity, 'capacity');
  lengths.forEach((length, slot) => assert.equal(cache.sequenceLength(slot), length, `slot ${slot} length`));
  for (let layer = 0; layer < LAYERS; layer++) {
    assert.deepEqual(Array.from(cache.pastKeys(layer)), expectedPast(sequences, lengths, capacity, layer, 'keys'), `layer ${layer} keys`);
    assert.deepEqual(Array.from(cache.pastValues(layer)), expectedPast(sequences, lengths, capacity, layer, 'values'), `layer ${layer} values`);
  }
}

/** The mask rows as arrays of 0/1 numbers. */
function maskRows(cache: BatchKvCache): number[][] {
  const mask = cache.nextAttentionMask();
  const columns = cache.capacity + 1;
  assert.equal(mask.length, cache.batchSize * columns, 'mask size');
  return Array.from({ length: cache.batchSize }, (_, slot) => Array.from(mask.subarray(slot * columns, (slot + 1) * columns), Number));
}

/** Mask rows of `capacity + 1` columns: 1 on [0, length) and on the last column. */
function expectedMask(lengths: readonly number[], capacity: number): number[][] {
  return lengths.map((length) => Array.from({ length: capacity + 1 }, (_, column) => (column < length || column === capacity ? 1 : 0)));
}

describe('BatchKvCache', () => {
  it('starts empty', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    assertLayout(cache, [], [], 0);
    assert.deepEqual(maskRows(cache), []);
  });

  it('writes joining sequences of different lengths into consecutive slots from column 0', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    assert.equal(cache.join(prefilled(1, 3)), 0);
    assertLayout(cache, [1], [3], 64);
    assert.equal(cache.join(prefilled(2, 5)), 1);
    assertLayout(cache, [1, 2], [3, 5], 64);
    assert.equal(cache.join(prefilled(3, 1)), 2);
    assertLayout(cache, [1, 2, 3], [3, 5, 1], 64);
  });

  it('masks in each slot its own columns and the new token', () => {
    // a context of 6 caps the capacity at 6 columns, small enough to spell the mask out
    const small = new BatchKvCache(LAYERS, H, D, 6);
    small.join(prefilled(1, 3));
    small.join(prefilled(2, 5));
    small.join(prefilled(3, 1));
    assert.equal(small.capacity, 6);
    assert.deepEqual(maskRows(small), [
      [1, 1, 1, 0, 0, 0, 1],
      [1, 1, 1, 1, 1, 0, 1],
      [1, 0, 0, 0, 0, 0, 1],
    ]);

    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    cache.join(prefilled(1, 3));
    cache.join(prefilled(2, 40));
    assert.deepEqual(maskRows(cache), expectedMask([3, 40], 64));
  });

  it('appends each slot its next column', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    cache.join(prefilled(1, 2));
    cache.join(prefilled(2, 4));
    decode(cache, [1, 2], [2, 4], 1);
    assertLayout(cache, [1, 2], [3, 5], 64);
    assert.deepEqual(maskRows(cache), expectedMask([3, 5], 64));
  });

  it('lets a sequence join after decode steps, in the next slot', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    cache.join(prefilled(1, 2));
    decode(cache, [1], [2], 4);
    assert.equal(cache.join(prefilled(2, 3)), 1);
    assertLayout(cache, [1, 2], [6, 3], 64);
    decode(cache, [1, 2], [6, 3], 1);
    assertLayout(cache, [1, 2], [7, 4], 64);
  });

  it('leave moves later slots down and keeps their data', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    cache.join(prefilled(1, 2));
    cache.join(prefilled(2, 6));
    cache.join(prefilled(3, 4));
    cache.join(prefilled(4, 5));
    cache.leave(1);
    assertLayout(cache, [1, 3, 4], [2, 4, 5], 64);
    assert.deepEqual(maskRows(cache), expectedMask([2, 4, 5], 64));
    cache.leave(0);
    assertLayout(cache, [3, 4], [4, 5], 64);
    cache.leave(1);
    assertLayout(cache, [3], [4], 64);
    decode(cache, [3], [4], 1);
    assertLayout(cache, [3], [5], 64);
  });

  it('a slot left behind by leave is clean when the next sequence joins', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    cache.join(prefilled(1, 5));
    cache.join(prefilled(2, 3));
    cache.leave(0);
    // the new slot 1 reuses the block sequence 2 moved out of; its columns from 1 on must be zero
    assert.equal(cache.join(prefilled(3, 1)), 1);
    assertLayout(cache, [2, 3], [3, 1], 64);
  });

  it('refuses to leave a slot it does not have, unchanged', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    cache.join(prefilled(1, 3));
    cache.join(prefilled(2, 4));
    for (const slot of [2, -1, 0.5]) {
      assert.throws(() => cache.leave(slot), (error: unknown) => error instanceof RangeError && /batch of 2/.test(error.message));
      assertLayout(cache, [1, 2], [3, 4], 64);
    }
  });

  it('shrinks the capacity when the longest sequence leaves', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    cache.join(prefilled(1, 3));
    cache.join(prefilled(2, 100));
    cache.join(prefilled(3, 7));
    assertLayout(cache, [1, 2, 3], [3, 100, 7], 128);
    cache.leave(1);
    assertLayout(cache, [1, 3], [3, 7], 64);
    assert.deepEqual(maskRows(cache), expectedMask([3, 7], 64));
    decode(cache, [1, 3], [3, 7], 2);
    assertLayout(cache, [1, 3], [5, 9], 64);
  });

  it('keeps the capacity while the longest sequence stays', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    cache.join(prefilled(1, 100));
    cache.join(prefilled(2, 3));
    cache.leave(1);
    assertLayout(cache, [1], [100], 128);
  });

  it('starts over after every sequence has left', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    cache.join(prefilled(1, 70));
    cache.join(prefilled(2, 3));
    cache.leave(0);
    cache.leave(0);
    assertLayout(cache, [], [], 0);
    assert.deepEqual(maskRows(cache), []);
    assert.equal(cache.join(prefilled(3, 2)), 0);
    assertLayout(cache, [3], [2], 64);
    decode(cache, [3], [2], 1);
    assertLayout(cache, [3], [3], 64);
  });

  it('keeps all data while it grows past 64 columns', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    cache.join(prefilled(1, 60));
    cache.join(prefilled(2, 5));
    decode(cache, [1, 2], [60, 5], 4);
    assertLayout(cache, [1, 2], [64, 9], 64);
    decode(cache, [1, 2], [64, 9], 6);
    assertLayout(cache, [1, 2], [70, 15], 128);
    assert.deepEqual(maskRows(cache), expectedMask([70, 15], 128));
  });

  it('refuses a sequence that leaves no room in the context, unchanged', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 8);
    cache.join(prefilled(1, 4));
    for (const length of [8, 9]) {
      assert.throws(() => cache.join(prefilled(2, length)), (error: unknown) => error instanceof RangeError && /context of 8/.test(error.message));
      assertLayout(cache, [1], [4], 8);
    }
    assert.equal(cache.join(prefilled(2, 7)), 1);
    assertLayout(cache, [1, 2], [4, 7], 8);
  });

  it('fills up to maxLength and then refuses to append, unchanged', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 8);
    cache.join(prefilled(1, 6));
    cache.join(prefilled(2, 2));
    decode(cache, [1, 2], [6, 2], 2);
    assertLayout(cache, [1, 2], [8, 4], 8);
    const maskBefore = maskRows(cache);
    const outputs = stepOutputs([1, 2], [8, 4]);
    assert.throws(() => cache.append(outputs.keys, outputs.values), (error: unknown) => error instanceof RangeError && /8 positions/.test(error.message));
    assertLayout(cache, [1, 2], [8, 4], 8);
    assert.deepEqual(maskRows(cache), maskBefore);
  });
});
