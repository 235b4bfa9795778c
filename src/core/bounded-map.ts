/**
 * A Map of at most `capacity` entries, for what is kept per user or per event. Entries stay in
 * the order they were last set: setting a key makes it the newest, and a set that passes the
 * capacity drops the oldest. Reads do not reorder, so that a time-based sweep (entries set
 * with a timestamp or an expiry) finds the expired ones first and stops at the first live one.
 *
 * The order is a linked list beside the Map rather than the Map's own order: V8 leaves a
 * Map's deleted entries in place until it rehashes, so always deleting its first entry costs
 * a walk over every entry deleted since, thousands per call in a full map.
 */
interface Entry<K, V> {
  readonly key: K;
  value: V;
  older: Entry<K, V> | null;
  newer: Entry<K, V> | null;
}

export class BoundedMap<K, V> {
  private readonly entries = new Map<K, Entry<K, V>>();
  private oldest: Entry<K, V> | null = null;
  private newest: Entry<K, V> | null = null;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`a BoundedMap holds at least 1 entry, got a capacity of ${capacity}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    return this.entries.get(key)?.value;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  set(key: K, value: V): void {
    let entry = this.entries.get(key);
    if (entry) {
      this.unlink(entry);
      entry.value = value;
    } else {
      entry = { key, value, older: null, newer: null };
      this.entries.set(key, entry);
    }
    entry.older = this.newest;
    if (this.newest) this.newest.newer = entry;
    else this.oldest = entry;
    this.newest = entry;
    if (this.entries.size > this.capacity && this.oldest) this.remove(this.oldest);
  }

  delete(key: K): boolean {
    const entry = this.entries.get(key);
    if (entry) this.remove(entry);
    return entry !== undefined;
  }

  /** Drops entries, oldest first, while `stale` holds; stops at the first it does not hold for. */
  dropOldestWhile(stale: (value: V, key: K) => boolean): void {
    while (this.oldest && stale(this.oldest.value, this.oldest.key)) this.remove(this.oldest);
  }

  private remove(entry: Entry<K, V>): void {
    this.unlink(entry);
    this.entries.delete(entry.key);
  }

  private unlink(entry: Entry<K, V>): void {
    if (entry.older) entry.older.newer = entry.newer;
    else this.oldest = entry.newer;
    if (entry.newer) entry.newer.older = entry.older;
    else this.newest = entry.older;
    entry.older = null;
    entry.newer = null;
  }
}
