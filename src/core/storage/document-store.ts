import type { Keyv } from 'keyv';
import { StorageError } from './storage-error.js';

/** What an update's change decides: a new value to store (or none, to leave the key as it is) and what the update returns. */
export interface DocumentChange<T> {
  /** Omitted: nothing is written. */
  readonly value?: unknown;
  readonly result: T;
}

/**
 * Values by key (JSON-like documents: the FAQ, inboxes, job records), shared by every process
 * that opens the same store. `update` is the one safe read-modify-write when several bot
 * instances write one key: plain get-then-set from two processes would drop one write.
 */
export interface KeyValueStore {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<unknown>;
  delete(key: string): Promise<unknown>;
  /**
   * Applies `change` to the current value atomically across processes (compare-and-swap: when
   * another writer got in between, `change` runs again on the newer value, so it must not have
   * side effects). Resolves with the result of the run that was stored.
   */
  update<T>(key: string, change: (current: unknown) => DocumentChange<T>): Promise<T>;
}

/** The serialized value under a key of the underlying store, and a swap that only happens when it still holds `expected`. */
export interface RawCompareAndSet {
  read(key: string): Promise<string | null>;
  /** Writes `next` when the key holds `expected` (null: when it is absent); false when it held something else. */
  compareAndSet(key: string, expected: string | null, next: string): Promise<boolean>;
}

/** Contention that keeps a writer losing this many times in a row is a bug or a storm, not bad luck. */
const MAX_ATTEMPTS = 100;

/**
 * Keyv for reads and plain writes, and the store's own compare-and-swap (a SQLite transaction,
 * a Redis script) over Keyv's serialized form for updates, so both see the same data.
 */
export class KeyvDocumentStore implements KeyValueStore {
  private readonly serialize: NonNullable<Keyv['serialize']>;
  private readonly deserialize: NonNullable<Keyv['deserialize']>;

  constructor(
    private readonly keyv: Keyv,
    private readonly raw: RawCompareAndSet,
    /** The key the underlying store holds for a Keyv key: Keyv and its store adapters add the namespace. */
    private readonly rawKeyOf: (key: string) => string,
  ) {
    if (!keyv.serialize || !keyv.deserialize) throw new TypeError('KeyvDocumentStore needs a Keyv that serializes its values');
    this.serialize = keyv.serialize;
    this.deserialize = keyv.deserialize;
  }

  get(key: string): Promise<unknown> {
    return this.keyv.get(key);
  }

  set(key: string, value: unknown): Promise<boolean> {
    return this.keyv.set(key, value);
  }

  delete(key: string): Promise<boolean> {
    return this.keyv.delete(key);
  }

  async update<T>(key: string, change: (current: unknown) => DocumentChange<T>): Promise<T> {
    const rawKey = this.rawKeyOf(key);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const before = await this.raw.read(rawKey);
      const outcome = change(before === null ? undefined : await this.decode(before, key));
      if (!('value' in outcome)) return outcome.result;
      const after = await this.serialize({ value: outcome.value });
      if (await this.raw.compareAndSet(rawKey, before, after)) return outcome.result;
      // Back off a little, at random, so that writers racing in lockstep spread out.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)));
    }
    throw new StorageError('STORAGE_CONFLICT', `gave up updating "${key}" after ${MAX_ATTEMPTS} attempts: other writers kept changing it`);
  }

  private async decode(serialized: string, key: string): Promise<unknown> {
    try {
      return ((await this.deserialize(serialized)) as { value?: unknown } | undefined)?.value;
    } catch (error) {
      throw new StorageError('STORAGE_CORRUPT', `the value stored under "${key}" cannot be read: ${(error as Error).message}`, { cause: error });
    }
  }
}
