import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { BoundedMap } from '../../../src/core/bounded-map.js';
import { RateLimiter } from '../../../src/core/conversation/rate-limit.js';

/** The token bucket written the plain way, every bucket kept for ever: what eviction must not change. */
class KeepEveryBucket {
  private readonly buckets = new Map<string, { tokens: number; updated: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly burst: number,
  ) {}

  take(key: string, now: number): number {
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, updated: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.updated) / 60_000) * this.perMinute);
    bucket.updated = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return Math.ceil(((1 - bucket.tokens) / this.perMinute) * 60);
    bucket.tokens -= 1;
    return 0;
  }
}

/** A deterministic sequence of numbers in [0, 1). */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * The heap in use after a full collection: what is kept, not the two million user names the
 * loops leave for the collector (whose timing differs between Node versions and runs).
 */
function heapAfterCollection(): number {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

describe('RateLimiter', () => {
  it('answers exactly as a limiter that keeps every bucket, while it drops the refilled ones', () => {
    const random = lcg(7);
    let now = 0;
    // 20 a minute, 5 at once: a bucket is full again 15 s after its last message.
    const limiter = new RateLimiter(20, 5, () => now);
    const reference = new KeepEveryBucket(20, 5);
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      // Bursts from a few users, now and then a pause long enough to refill every bucket.
      now += random() < 0.01 ? 16_000 : Math.floor(random() * 400);
      const user = `u${Math.floor(random() * 8)}`;
      const wait = limiter.take(user);
      assert.equal(wait, reference.take(user, now), `message ${i} from ${user} at ${now} ms`);
      if (wait > 0) refused++;
    }
    assert.ok(refused > 1000, `the sequence exercises refusals too (${refused})`);
    now += 15_000;
    limiter.take('u0');
    assert.equal(limiter.size, 1, 'the buckets of users quiet for 15 s are dropped');
  });

  it('keeps memory bounded under a million distinct users', () => {
    let now = 0;
    const limiter = new RateLimiter(20, 5, () => now, 10_000);
    const heapBefore = heapAfterCollection();
    let largest = 0;
    // One new user a millisecond for 1000 s: at most 15 s of users are live at once.
    for (let i = 0; i < 1_000_000; i++) {
      now = i;
      assert.equal(limiter.take(`user-${i}`), 0);
      largest = Math.max(largest, limiter.size);
    }
    assert.ok(largest <= 10_000, `never more than maxUsers buckets (${largest})`);
    // The same million at one instant: the cap holds, and the newest users keep their buckets.
    for (let i = 0; i < 1_000_000; i++) limiter.take(`burst-${i}`);
    assert.equal(limiter.size, 10_000);
    // Its first message took one token of the five.
    for (let n = 0; n < 4; n++) assert.equal(limiter.take('burst-999999'), 0);
    assert.ok(limiter.take('burst-999999') > 0, 'a user still held is still limited');
    const grownMiB = (heapAfterCollection() - heapBefore) / 2 ** 20;
    assert.ok(grownMiB < 64, `heap grew by ${grownMiB.toFixed(1)} MiB`);
    now += 15_000;
    limiter.take('late');
    assert.equal(limiter.size, 1, 'every refilled bucket is dropped by the next message');
  });
});

describe('BoundedMap', () => {
  it('drops the oldest set entry past its capacity; a set makes a key the newest, a read does not', () => {
    const map = new BoundedMap<string, number>(3);
    for (const [key, value] of [['a', 1], ['b', 2], ['c', 3]] as const) map.set(key, value);
    map.set('a', 10);
    assert.equal(map.get('b'), 2);
    map.set('d', 4);
    assert.deepEqual(['a', 'b', 'c', 'd'].map((key) => map.has(key)), [true, false, true, true]);
    assert.equal(map.size, 3);
    // Oldest first: c (3), a (10), d (4).
    map.dropOldestWhile((value) => value < 5);
    assert.deepEqual(['c', 'a', 'd'].map((key) => map.get(key)), [undefined, 10, 4], 'the sweep stops at the first entry it keeps');
    assert.equal(map.delete('a'), true);
    map.set('e', 5);
    map.set('f', 6);
    map.set('g', 7);
    assert.deepEqual(['d', 'e', 'f', 'g'].map((key) => map.has(key)), [false, true, true, true]);
    assert.throws(() => new BoundedMap(0), RangeError);
  });
});
