import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchKvCache } from '../../../src/model/runtime/kv-cache.js';

const LAYERS = 2;
const H = 2;
const D = 3;
/** Positions a test sequence may reach; only sizes the numbering below. */
const MAX_T = 512;
type Which = 'keys' | 'values';

// Every element of every sequence gets its own integer (a mixed-radix number, exact in float32),
// so a value that lands in the wrong column, head, slot, layer or buffer shows up as a wrong number.
function element(sequence: number, layer: number, which: Which, h: number, t: number, d: number): number {
  return ((((sequence * LAYERS + layer) * 2 + (which === 'values' ? 1 : 0)) * H + h) * MAX_T + t) * D + d + 1;
}

/**
 * One run's new.N.key/value, [B, H, width, D] per layer, left-padded: slot s brings positions
 * [from[s], from[s] + counts[s]) of sequences[s] in its last counts[s] columns; padding holds
 * junk (-7), which must never reach the cache.
 */
function runOutputs(sequences: readonly number[], from: readonly number[], counts: readonly number[]) {
  const width = Math.max(...counts);
  const perLayer = (which: Which) =>
    Array.from({ length: LAYERS }, (_, layer) => {
      const data = new Float32Array(sequences.length * H * width * D).fill(-7);
      sequences.forEach((sequence, slot) => {
        const padding = width - counts[slot];
        for (let h = 0; h < H; h++) {
          for (let t = 0; t < counts[slot]; t++) {
            for (let d = 0; d < D; d++) data[((slot * H + h) * width + padding + t) * D + d] = element(sequence, layer, which, h, from[slot] + t, d);
          }
        }
      });
      return data;
    });
  return { keys: perLayer('keys'), values: perLayer('values'), width };
}

/** Appends `counts[s]` more positions of sequences[s] to each slot, which holds `lengths[s]` now. */
function feed(cache: BatchKvCache, sequences: readonly number[], lengths: readonly number[], counts: readonly number[]): void {
  const outputs = runOutputs(sequences, lengths, counts);
  cache.append(outputs.keys, outputs.values, counts, outputs.width);
}

/** Runs `steps` decode steps (one token per slot) for slots holding `sequences`, which start at `lengths`. */
function decode(cache: BatchKvCache, sequences: readonly number[], lengths: readonly number[], steps: number): void {
  for (let step = 0; step < steps; step++) {
    feed(
      cache,
      sequences,
      lengths.map((length) => length + step),
      sequences.map(() => 1),
    );
  }
}

/** A cache whose slots hold `lengths[s]` positions of sequences[s], each put in by one run. */
function filled(sequences: readonly number[], lengths: readonly number[], maxLength = 1024): BatchKvCache {
  const cache = new BatchKvCache(LAYERS, H, D, maxLength);
  for (const _ of sequences) cache.add();
  feed(
    cache,
    sequences,
    sequences.map(() => 0),
    lengths,
  );
  return cache;
}

/**
 * The feeds the cache should hold, built element by element: past.N.key and past.N.value,
 * both [B, H, P, D], slot s holding positions [0, lengths[s]) of sequences[s] and zeros
 * after. Zeros and not merely masked: a masked column still goes through the MatMuls before
 * the mask applies, and an Inf or NaN left there from an earlier sequence would poison the row.
 */
function expectedPast(sequences: readonly number[], lengths: readonly number[], P: number, layer: number, which: Which): number[] {
  const expected = new Array<number>(sequences.length * H * D * P).fill(0);
  sequences.forEach((sequence, s) => {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < lengths[s]; t++) {
        for (let d = 0; d < D; d++) {
          expected[((s * H + h) * P + t) * D + d] = element(sequence, layer, which, h, t, d);
        }
      }
    }
  });
  return expected;
}

function assertLayout(cache: BatchKvCache, sequences: readonly number[], lengths: readonly number[], capacity: number, label = ''): void {
  assert.equal(cache.batchSize, sequences.length, `batch size ${label}`);
  assert.equal(cache.capacity, capacity, `capacity ${label}`);
  lengths.forEach((length, slot) => assert.equal(cache.sequenceLength(slot), length, `slot ${slot} length`));
  for (let layer = 0; layer < LAYERS; layer++) {
    assert.deepEqual(Array.from(cache.pastKeys(layer)), expectedPast(sequences, lengths, capacity, layer, 'keys'), `layer ${layer} keys`);
    assert.deepEqual(Array.from(cache.pastValues(layer)), expectedPast(sequences, lengths, capacity, layer, 'values'), `layer ${layer} values`);
  }
}

/** The mask rows, for a run bringing `counts[s]` tokens per slot, as arrays of 0/1 numbers. */
function maskRows(cache: BatchKvCache, counts: readonly number[] = Array(cache.batchSize).fill(1)): number[][] {
  const width = Math.max(1, ...counts);
  const mask = cache.attentionMask(counts, width);
  const columns = cache.capacity + width;
  assert.equal(mask.length, cache.batchSize * columns, 'mask size');
  return Array.from({ length: cache.batchSize }, (_, slot) => Array.from(mask.subarray(slot * columns, (slot + 1) * columns), Number));
}

/** Mask rows for one new token per slot: 1 on [0, length) and on the last column. */
function expectedMask(lengths: readonly number[], capacity: number): number[][] {
  return lengths.map((length) => Array.from({ length: capacity + 1 }, (_, column) => (column < length || column === capacity ? 1 : 0)));
}

const throwsRange = (pattern: RegExp) => (error: unknown) => error instanceof RangeError && pattern.test(error.message);

describe('BatchKvCache', () => {
  it('starts empty', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    assertLayout(cache, [], [], 0);
    assert.deepEqual(maskRows(cache), []);
  });

  it('adds empty slots at the end and fills each from column 0 in one left-padded run', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    assert.equal(cache.add(), 0);
    assert.equal(cache.add(), 1);
    assert.equal(cache.add(), 2);
    assertLayout(cache, [1, 2, 3], [0, 0, 0], 0);
    feed(cache, [1, 2, 3], [0, 0, 0], [3, 5, 1]);
    assertLayout(cache, [1, 2, 3], [3, 5, 1], 64);
  });

  it('masks in each slot its own past and its real new tokens, padding on the left', () => {
    // a context of 6 caps the capacity at 6 columns, small enough to spell the mask out
    const small = filled([1, 2, 3], [3, 5, 1], 6);
    assert.equal(small.capacity, 6);
    assert.deepEqual(maskRows(small), [
      [1, 1, 1, 0, 0, 0, 1],
      [1, 1, 1, 1, 1, 0, 1],
      [1, 0, 0, 0, 0, 0, 1],
    ]);
    assert.deepEqual(maskRows(small, [2, 1, 3]), [
      [1, 1, 1, 0, 0, 0, 0, 1, 1],
      [1, 1, 1, 1, 1, 0, 0, 0, 1],
      [1, 0, 0, 0, 0, 0, 1, 1, 1],
    ]);
    assert.deepEqual(maskRows(filled([1, 2], [3, 40])), expectedMask([3, 40], 64));
  });

  it('appends each slot its next columns, a chunk for some and one token for others', () => {
    const cache = filled([1, 2, 3], [2, 4, 1]);
    feed(cache, [1, 2, 3], [2, 4, 1], [1, 6, 3]);
    assertLayout(cache, [1, 2, 3], [3, 10, 4], 64);
    decode(cache, [1, 2, 3], [3, 10, 4], 2);
    assertLayout(cache, [1, 2, 3], [5, 12, 6], 64);
    assert.deepEqual(maskRows(cache), expectedMask([5, 12, 6], 64));
  });

  it('adds a slot after decode steps without moving the others', () => {
    const cache = filled([1], [2]);
    decode(cache, [1], [2], 4);
    const before = Array.from(cache.pastKeys(0));
    assert.equal(cache.add(), 1);
    assert.deepEqual(Array.from(cache.pastKeys(0)).slice(0, before.length), before);
    feed(cache, [1, 2], [6, 0], [1, 3]);
    assertLayout(cache, [1, 2], [7, 3], 64);
  });

  it('remove moves the last slot into the hole and says which slot moved', () => {
    const cache = filled([1, 2, 3, 4], [2, 6, 4, 5]);
    assert.equal(cache.remove(1), 3);
    assertLayout(cache, [1, 4, 3], [2, 5, 4], 64);
    assert.deepEqual(maskRows(cache), expectedMask([2, 5, 4], 64));
    assert.equal(cache.remove(2), null, 'the last slot leaves and nothing moves');
    assertLayout(cache, [1, 4], [2, 5], 64);
    assert.equal(cache.remove(0), 1);
    assertLayout(cache, [4], [5], 64);
    decode(cache, [4], [5], 1);
    assertLayout(cache, [4], [6], 64);
  });

  it('a slot vacated by remove is clean when the next sequence joins', () => {
    const cache = filled([1, 2], [5, 3]);
    cache.remove(0);
    // the new slot 1 reuses the block sequence 2 moved out of; its columns from 1 on must be zero
    assert.equal(cache.add(), 1);
    feed(cache, [2, 3], [3, 0], [1, 1]);
    assertLayout(cache, [2, 3], [4, 1], 64);
  });

  it('adopt copies one slot from a cache of another capacity, and nothing else', () => {
    const decoding = filled([1, 2], [3, 70]);
    const prefilling = filled([3, 4], [5, 9]);
    assert.equal(decoding.capacity, 128);
    assert.equal(prefilling.capacity, 64);
    assert.deepEqual(decoding.adopt(prefilling, [1]), [2]);
    assertLayout(decoding, [1, 2, 4], [3, 70, 9], 128);
    assertLayout(prefilling, [3, 4], [5, 9], 64);
    const long = filled([5], [200]);
    assert.deepEqual(prefilling.adopt(long, [0]), [2]);
    assertLayout(prefilling, [3, 4, 5], [5, 9, 200], 256);
  });

  it('adopts a burst of slots in the order given, laying its buffers out once for all of them', () => {
    const prefilling = filled([1, 2, 3, 4, 5], [4, 7, 2, 66, 9]);
    const decoding = new BatchKvCache(LAYERS, H, D, 1024);
    assert.deepEqual(decoding.adopt(prefilling, [4, 0, 3]), [0, 1, 2]);
    assertLayout(decoding, [5, 1, 4], [9, 4, 66], 128);
    // one slot at a time, the slots would have doubled 1 -> 2 -> 4, laying the buffers out each time
    assert.equal(decoding.pastKeys(0).buffer.byteLength, 3 * H * 128 * D * Float32Array.BYTES_PER_ELEMENT);
    assert.deepEqual(decoding.adopt(prefilling, []), []);
    assertLayout(decoding, [5, 1, 4], [9, 4, 66], 128);
  });

  it('makes room for joiners to come without laying out more columns, so they join with no re-layout', () => {
    const decoding = filled([1, 2], [3, 70]);
    decoding.makeRoom(5, 200);
    const buffer = decoding.pastKeys(0).buffer;
    assert.equal(buffer.byteLength, 5 * H * 256 * D * Float32Array.BYTES_PER_ELEMENT, '5 slots of 200 columns, the columns allocated as growth does (doubled)');
    assertLayout(decoding, [1, 2], [3, 70], 128, 'the runs until the joiners come still read 128 columns');
    const prefilling = filled([3, 4, 5], [150, 9, 199]);
    for (const slot of [0, 1, 2]) decoding.adopt(prefilling, [slot]);
    assertLayout(decoding, [1, 2, 3, 4, 5], [3, 70, 150, 9, 199], 256);
    assert.equal(decoding.pastKeys(0).buffer, buffer, 'the joiners moved into the room made for them');
    decoding.makeRoom(4, 100);
    assert.equal(decoding.pastKeys(0).buffer, buffer, 'room there is already is kept');
  });

  it('keeps an emptied layout, zeroed, for the next joiners until it is released', () => {
    const cache = filled([1, 2], [5, 100]);
    const buffer = cache.pastKeys(0).buffer;
    cache.remove(0);
    cache.remove(0);
    assertLayout(cache, [], [], 128);
    assert.equal(cache.add(), 0);
    feed(cache, [3], [0], [2]);
    assertLayout(cache, [3], [2], 128);
    assert.equal(cache.pastKeys(0).buffer, buffer, 'the join reused the buffers');
    assert.throws(() => cache.release(), throwsRange(/holds 1 sequences/));
    cache.remove(0);
    cache.release();
    assertLayout(cache, [], [], 0);
    assert.equal(cache.pastKeys(0).buffer.byteLength, 0);
  });

  it('lays an emptied layout out anew when its buffers are four times wider than what joins', () => {
    const cache = filled([1], [300]);
    const allocated = (c: BatchKvCache) => c.pastKeys(0).buffer.byteLength / (H * D * Float32Array.BYTES_PER_ELEMENT);
    cache.remove(0);
    assertLayout(cache, [], [], 320);
    assert.equal(allocated(cache), 512);
    cache.add();
    assertLayout(cache, [0], [0], 320, 'no length given: kept');
    cache.remove(0);
    cache.add(200);
    assertLayout(cache, [0], [0], 256, 'the columns 200 needs, in buffers of 512: kept');
    assert.equal(allocated(cache), 512);
    cache.remove(0);
    cache.add(100);
    assertLayout(cache, [0], [0], 128, 'buffers of 512 for 128 columns: laid out anew');
    assert.equal(allocated(cache), 128);
    const decoding = filled([1], [300]);
    decoding.remove(0);
    assert.deepEqual(decoding.adopt(filled([2], [120]), []), []);
    assertLayout(decoding, [], [], 320);
    decoding.adopt(filled([2], [120]), [0]);
    assertLayout(decoding, [2], [120], 128);
    assert.equal(allocated(decoding), 128);
  });

  it('refuses a slot it does not have, and counts that do not fit the batch, unchanged', () => {
    const cache = filled([1, 2], [3, 4]);
    for (const slot of [2, -1, 0.5]) {
      assert.throws(() => cache.remove(slot), throwsRange(/batch of 2/));
      assert.throws(() => cache.sequenceLength(slot), throwsRange(/batch of 2/));
    }
    const outputs = runOutputs([1, 2], [3, 4], [1, 1]);
    for (const counts of [[1], [1, 0], [1, 2], [1, 1, 1]]) {
      assert.throws(() => cache.append(outputs.keys, outputs.values, counts, 1), throwsRange(/1 to 1 new tokens per slot/));
      assert.throws(() => cache.attentionMask(counts, 1), throwsRange(/1 to 1 new tokens per slot/));
    }
    assertLayout(cache, [1, 2], [3, 4], 64);
  });

  it('grows its columns 64 at a time as sequences grow, in place while its buffers hold them, keeping all data', () => {
    const cache = filled([1, 2], [60, 5]);
    const buffer = cache.pastKeys(0).buffer;
    decode(cache, [1, 2], [60, 5], 4);
    assertLayout(cache, [1, 2], [64, 9], 64);
    decode(cache, [1, 2], [64, 9], 6);
    assertLayout(cache, [1, 2], [70, 15], 128);
    assert.deepEqual(maskRows(cache), expectedMask([70, 15], 128));
    assert.notEqual(cache.pastKeys(0).buffer, buffer, 'buffers of 64 columns cannot hold 128');
    feed(cache, [1, 2], [70, 15], [100, 1]);
    assertLayout(cache, [1, 2], [170, 16], 192);
    const doubled = cache.pastKeys(0).buffer;
    assert.equal(doubled.byteLength, 2 * H * 256 * D * Float32Array.BYTES_PER_ELEMENT, 'allocated doubled, to 256');
    decode(cache, [1, 2], [170, 16], 30);
    assertLayout(cache, [1, 2], [200, 46], 256);
    assert.equal(cache.pastKeys(0).buffer, doubled, 'grown in place');
  });

  it('doubles its slots as sequences join, keeping all data', () => {
    const cache = new BatchKvCache(LAYERS, H, D, 1024);
    const sequences: number[] = [];
    for (let sequence = 1; sequence <= 5; sequence++) {
      cache.add();
      sequences.push(sequence);
      feed(
        cache,
        sequences,
        sequences.map((s) => (s === sequence ? 0 : 2 * (sequence - s))),
        sequences.map(() => 2),
      );
    }
    assertLayout(cache, sequences, [10, 8, 6, 4, 2], 64);
  });

  it('shrinks its columns after a leave to what the longest left needs and one step more', () => {
    const cache = filled([1, 2, 3, 4], [3, 300, 200, 20]);
    assert.equal(cache.capacity, 320);
    const buffer = cache.pastKeys(0).buffer;
    cache.remove(1);
    assertLayout(cache, [1, 4, 3], [3, 20, 200], 320, 'the longest left needs 201 columns and one step: 320');
    cache.remove(2);
    assertLayout(cache, [1, 4], [3, 20], 128, '21 and one step: 128, a quarter of the 512 allocated');
    assert.notEqual(cache.pastKeys(0).buffer, buffer, 'allocated anew, smaller');
    const wide = filled([1, 2, 3], [3, 150, 250]);
    const wideBuffer = wide.pastKeys(0).buffer;
    wide.remove(2);
    assertLayout(wide, [1, 2], [3, 150], 256, '151 and one step: 256');
    wide.remove(1);
    assertLayout(wide, [1], [3], 128, 'moved in place, the freed room zeroed');
    assert.equal(wide.pastKeys(0).buffer, wideBuffer);
    decode(wide, [1], [3], 2);
    assertLayout(wide, [1], [5], 128);
    assert.equal(wide.add(), 1);
    feed(wide, [1, 2], [5, 0], [1, 1]);
    assertLayout(wide, [1, 2], [6, 1], 128, 'a joiner finds its block zero');
  });

  it('fills up to maxLength and then refuses to append, unchanged', () => {
    const cache = filled([1, 2], [6, 2], 8);
    decode(cache, [1, 2], [6, 2], 2);
    assertLayout(cache, [1, 2], [8, 4], 8);
    const maskBefore = maskRows(cache);
    const outputs = runOutputs([1, 2], [8, 4], [1, 1]);
    assert.throws(() => cache.append(outputs.keys, outputs.values, [1, 1], 1), throwsRange(/8 positions/));
    assertLayout(cache, [1, 2], [8, 4], 8);
    assert.deepEqual(maskRows(cache), maskBefore);
    const chunk = runOutputs([1, 2], [8, 4], [1, 5]);
    assert.throws(() => cache.append(chunk.keys, chunk.values, [1, 5], 5), throwsRange(/8 positions/));
    assertLayout(cache, [1, 2], [8, 4], 8);
  });
});
