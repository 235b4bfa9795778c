import { BoundedMap } from '../../core/bounded-map.js';

/**
 * Slack delivers an event again when it thinks the first delivery failed (X-Slack-Retry-Num),
 * and a message can arrive twice under two events (a mention in a DM, with message.im on).
 * Each is answered once: the adapter claims the event's id, and the message's channel and ts,
 * before it answers. The interface is one atomic call so that a shared store (Redis: SET key
 * NX PX ttl) can stand behind it when several instances share the traffic.
 */
export interface SeenEvents {
  /** True the first time `key` is claimed within the time-to-live, false after that. */
  claim(key: string): Promise<boolean>;
}

/** Slack retries for about five minutes after the first delivery; an hour leaves room. */
export const SEEN_EVENT_TTL_MS = 60 * 60_000;

/** What one instance remembers at most: at a hundred events a second, a quarter of the hour's. */
export const MAX_SEEN_EVENTS = 100_000;

/**
 * One instance's memory: keys expire after `ttlMs`, and no more than `maxKeys` are kept (past
 * that the oldest go, and a late retry of theirs would be answered again).
 */
export class MemorySeenEvents implements SeenEvents {
  /** The order of claiming is expiry order, since every key lives for the same time. */
  private readonly expiries: BoundedMap<string, number>;

  constructor(
    private readonly ttlMs: number = SEEN_EVENT_TTL_MS,
    private readonly now: () => number = Date.now,
    maxKeys: number = MAX_SEEN_EVENTS,
  ) {
    this.expiries = new BoundedMap(maxKeys);
  }

  async claim(key: string): Promise<boolean> {
    const now = this.now();
    this.expiries.dropOldestWhile((expiry) => expiry <= now);
    if (this.expiries.has(key)) return false;
    this.expiries.set(key, now + this.ttlMs);
    return true;
  }

  get size(): number {
    return this.expiries.size;
  }
}
