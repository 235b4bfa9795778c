import type { createClient } from '@keyv/redis';
import { StorageError } from './storage-error.js';
import { checkAppendOptions, expiresAt, parseStoredTurn, type AppendOptions, type Turn, type TurnLog } from './turn-log.js';

export type RedisClient = ReturnType<typeof createClient>;

interface StoredTurn extends Turn {
  expiresAt: number | null;
}

/**
 * Turns as one Redis list per user. An append is one MULTI/EXEC of RPUSH, LTRIM to the newest
 * `keepLast` and PEXPIRE (or PERSIST without a TTL), so appends from any number of processes
 * interleave whole and the list never outgrows its cap. The list lives `ttlMs` past its newest
 * append; each entry carries its own expiry, and reads skip expired entries still in the list.
 */
export class RedisTurnLog implements TurnLog {
  readonly #client: RedisClient;
  readonly #keyPrefix: string;

  /** The caller owns `client` and closes it. `keyPrefix` goes before every user key. */
  constructor(client: RedisClient, keyPrefix: string) {
    this.#client = client;
    this.#keyPrefix = keyPrefix;
  }

  /**
   * The MULTI is queued on the connection before this returns its promise, so the calls of one
   * process reach Redis in the order they were made.
   */
  async append(userKey: string, turn: Turn, options: AppendOptions): Promise<void> {
    checkAppendOptions(options);
    const key = this.#keyPrefix + userKey;
    const entry: StoredTurn = { role: turn.role, text: turn.text, at: turn.at, expiresAt: expiresAt(turn, options.ttlMs) };
    const transaction = this.#client.multi().rPush(key, JSON.stringify(entry)).lTrim(key, -options.keepLast, -1);
    if (options.ttlMs === undefined) transaction.persist(key);
    else transaction.pExpire(key, Math.ceil(options.ttlMs));
    await transaction.exec();
  }

  async recent(userKey: string, limit: number): Promise<Turn[]> {
    if (limit <= 0) return [];
    return this.#read(userKey, -limit, -1);
  }

  async all(userKey: string): Promise<Turn[]> {
    return this.#read(userKey, 0, -1);
  }

  async delete(userKey: string): Promise<void> {
    await this.#client.del(this.#keyPrefix + userKey);
  }

  async #read(userKey: string, start: number, stop: number): Promise<Turn[]> {
    const key = this.#keyPrefix + userKey;
    const entries = await this.#client.lRange(key, start, stop);
    const now = Date.now();
    const turns: Turn[] = [];
    for (const entry of entries) {
      const stored = parseEntry(entry, key);
      if (typeof stored.expiresAt === 'number' && stored.expiresAt <= now) continue;
      turns.push(parseStoredTurn(stored, `Redis list ${key}`));
    }
    return turns;
  }
}

function parseEntry(entry: string, key: string): Partial<StoredTurn> {
  try {
    return JSON.parse(entry) as Partial<StoredTurn>;
  } catch (error) {
    throw new StorageError('STORAGE_CORRUPT', `Redis list ${key} holds an entry that is not JSON: ${entry.slice(0, 80)}`, { cause: error });
  }
}
