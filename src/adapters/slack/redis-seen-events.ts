import type { RedisClient } from '../../core/storage/redis-turn-log.js';
import { SEEN_EVENT_TTL_MS, type SeenEvents } from './seen-events.js';

/**
 * Seen events that every instance on one Redis shares, so that Slack's retry of an event is
 * skipped even when the load balancer hands it to another instance than the first delivery.
 * A claim is one `SET <namespace>:slack-seen:<key> 1 NX PX <ttl>`: of any number of instances
 * claiming one key at once, Redis lets exactly one set it.
 */
export class RedisSeenEvents implements SeenEvents {
  constructor(
    private readonly redis: RedisClient,
    private readonly namespace: string,
    private readonly ttlMs: number = SEEN_EVENT_TTL_MS,
  ) {}

  async claim(key: string): Promise<boolean> {
    const reply = await this.redis.set(this.keyOf(key), '1', { condition: 'NX', expiration: { type: 'PX', value: this.ttlMs } });
    return reply === 'OK';
  }

  /** The Redis key that holds the claim on `key`. */
  keyOf(key: string): string {
    return `${this.namespace}:slack-seen:${key}`;
  }
}
