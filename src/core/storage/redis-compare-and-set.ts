import type { RawCompareAndSet } from './document-store.js';
import type { RedisClient } from './redis-turn-log.js';

/** Redis runs a script alone, so the comparison and the write cannot be split by another client. */
const COMPARE_AND_SET = `
local current = redis.call('GET', KEYS[1])
if (ARGV[1] == 'absent' and current == false) or (ARGV[1] == 'equal' and current == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0`;

export class RedisCompareAndSet implements RawCompareAndSet {
  /** The caller owns `client` and closes it. */
  constructor(private readonly client: RedisClient) {}

  async read(key: string): Promise<string | null> {
    return (await this.client.get(key)) ?? null;
  }

  async compareAndSet(key: string, expected: string | null, next: string): Promise<boolean> {
    const swapped = await this.client.eval(COMPARE_AND_SET, { keys: [key], arguments: [expected === null ? 'absent' : 'equal', expected ?? '', next] });
    return swapped === 1;
  }
}
