import type { KeyValueStore } from '../../src/core/faq/faq-store.js';

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

  /** The store as a restart would find it. */
  copy(): MapStore {
    return new MapStore(structuredClone(this.values));
  }
}
