import type { DocumentChange, KeyValueStore } from '../../src/core/storage/document-store.js';

/** An in-memory KeyValueStore; values are copied in and out, as a serializing store (Keyv) would. */
export class MapStore implements KeyValueStore {
  /** How many times set() was called. */
  writes = 0;

  constructor(readonly values = new Map<string, unknown>()) {}

  async get(key: string): Promise<unknown> {
    return structuredClone(this.values.get(key));
  }

  async set(key: string, value: unknown): Promise<void> {
    this.writes++;
    this.values.set(key, structuredClone(value));
  }

  async delete(key: string): Promise<void> {
    this.values.delete(key);
  }

  /** Atomic as it is: nothing else runs between the read and the write. */
  async update<T>(key: string, change: (current: unknown) => DocumentChange<T>): Promise<T> {
    const outcome = change(structuredClone(this.values.get(key)));
    if ('value' in outcome) await this.set(key, outcome.value);
    return outcome.result;
  }

  /** The store as a restart would find it. */
  copy(): MapStore {
    return new MapStore(structuredClone(this.values));
  }
}
