import { EventEmitter } from 'node:events';
import type { Database, Statement } from 'better-sqlite3';
import type { KeyvStoreAdapter } from 'keyv';
import type { RawCompareAndSet } from './document-store.js';

/**
 * A Keyv store over a better-sqlite3 database: one table of key, value and expiry time.
 * Keyv hands it values already serialized to strings and keys already prefixed with its
 * namespace. Expired rows are never returned and are swept on every write.
 */
export class SqliteKeyvStore extends EventEmitter implements KeyvStoreAdapter, RawCompareAndSet {
  /** `dialect: 'sqlite'` makes Keyv offer iteration over this store. */
  readonly opts: { dialect: 'sqlite'; url: string };
  namespace?: string;

  readonly #select: Statement<[string, number], { value: string }>;
  readonly #upsert: Statement<[string, string, number | null]>;
  readonly #delete: Statement<[string]>;
  readonly #sweep: Statement<[number]>;
  readonly #clearAll: Statement<[]>;
  readonly #clearPrefix: Statement<{ prefix: string }>;
  readonly #iterate: Statement<{ prefix: string; now: number }, { key: string; value: string }>;
  readonly #swap: (key: string, expected: string | null, next: string) => boolean;

  /** The caller owns `db` (it may share it) and closes it. */
  constructor(db: Database, url: string) {
    super();
    this.opts = { dialect: 'sqlite', url };
    db.exec(`
      CREATE TABLE IF NOT EXISTS keyv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires INTEGER);
      CREATE INDEX IF NOT EXISTS keyv_expires ON keyv (expires) WHERE expires IS NOT NULL;
    `);
    const live = '(expires IS NULL OR expires > ?)';
    this.#select = db.prepare(`SELECT value FROM keyv WHERE key = ? AND ${live}`);
    this.#upsert = db.prepare(
      'INSERT INTO keyv (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires',
    );
    this.#delete = db.prepare('DELETE FROM keyv WHERE key = ?');
    this.#sweep = db.prepare('DELETE FROM keyv WHERE expires <= ?');
    this.#clearAll = db.prepare('DELETE FROM keyv');
    // substr rather than LIKE, so that % and _ in a namespace match only themselves.
    this.#clearPrefix = db.prepare('DELETE FROM keyv WHERE substr(key, 1, length(@prefix)) = @prefix');
    this.#iterate = db.prepare(
      `SELECT key, value FROM keyv WHERE substr(key, 1, length(@prefix)) = @prefix AND (expires IS NULL OR expires > @now) ORDER BY key`,
    );
    // IMMEDIATE takes the write lock before the read, so no other process can write in between.
    this.#swap = db
      .transaction((key: string, expected: string | null, next: string) => {
        const current = this.#select.get(key, Date.now())?.value ?? null;
        if (current !== expected) return false;
        this.#upsert.run(key, next, null);
        return true;
      })
      .immediate.bind(null);
  }

  /** A serialized value as Keyv stored it under a full (namespaced) key. */
  async read(key: string): Promise<string | null> {
    return this.#select.get(key, Date.now())?.value ?? null;
  }

  /** Stores `next` without expiry when the live value under `key` is `expected` (null: none). */
  async compareAndSet(key: string, expected: string | null, next: string): Promise<boolean> {
    return this.#swap(key, expected, next);
  }

  async get<Value>(key: string): Promise<Value | undefined> {
    return this.#select.get(key, Date.now())?.value as Value | undefined;
  }

  async getMany<Value>(keys: string[]): Promise<Array<Value | undefined>> {
    const now = Date.now();
    return keys.map((key) => this.#select.get(key, now)?.value as Value | undefined);
  }

  async has(key: string): Promise<boolean> {
    return this.#select.get(key, Date.now()) !== undefined;
  }

  /** `ttl` in milliseconds, as Keyv passes it. */
  async set(key: string, value: unknown, ttl?: number): Promise<void> {
    if (typeof value !== 'string') {
      throw new TypeError(`SqliteKeyvStore stores strings (Keyv's serialized values), got ${typeof value} for key "${key}"`);
    }
    const now = Date.now();
    this.#sweep.run(now);
    this.#upsert.run(key, value, typeof ttl === 'number' && ttl > 0 ? now + ttl : null);
  }

  async delete(key: string): Promise<boolean> {
    return this.#delete.run(key).changes > 0;
  }

  async deleteMany(keys: string[]): Promise<boolean> {
    let deleted = false;
    for (const key of keys) deleted = this.#delete.run(key).changes > 0 || deleted;
    return deleted;
  }

  /** Clears this store's namespace only, or the whole table when it has none. */
  async clear(): Promise<void> {
    if (this.namespace) this.#clearPrefix.run({ prefix: `${this.namespace}:` });
    else this.#clearAll.run();
  }

  async *iterator<Value>(namespace?: string): AsyncGenerator<Array<string | Awaited<Value> | undefined>, void> {
    const prefix = namespace ? `${namespace}:` : '';
    for (const row of this.#iterate.all({ prefix, now: Date.now() })) yield [row.key, row.value as Awaited<Value>];
  }
}
