import { BoundedMap } from '../bounded-map.js';

/** How many users' buckets a limiter keeps at most. */
export const DEFAULT_MAX_RATE_LIMITED_USERS = 100_000;

interface Bucket {
  tokens: number;
  updated: number;
}

/**
 * A per-user token bucket: `burst` messages at once, refilled at `perMinute`. In memory: it
 * protects one instance's model from one user, not a cluster-wide quota.
 *
 * Memory stays bounded however many users write: a bucket left alone for the time a full
 * refill takes is full, the same as no bucket, so it is dropped; and at most `maxUsers`
 * buckets are kept. Past that (more users within one refill time than it holds), the user
 * least recently seen loses their bucket and starts again with a full one: the limiter then
 * errs on the side of answering.
 */
export class RateLimiter {
  private readonly buckets: BoundedMap<string, Bucket>;
  /** From empty (0 tokens) to full. */
  private readonly refillMs: number;

  constructor(
    private readonly perMinute: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
    maxUsers: number = DEFAULT_MAX_RATE_LIMITED_USERS,
  ) {
    this.buckets = new BoundedMap(maxUsers);
    this.refillMs = (burst / perMinute) * 60_000;
  }

  /** How many users' buckets are kept. */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one message's token; returns 0 when allowed, else the seconds until the next is. */
  take(key: string): number {
    const now = this.now();
    // Buckets are in the order of their last update, so the full ones come first.
    this.buckets.dropOldestWhile((bucket) => now - bucket.updated >= this.refillMs);
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, updated: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.updated) / 60_000) * this.perMinute);
    bucket.updated = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / this.perMinute) * 60);
  }
}
