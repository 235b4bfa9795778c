import { StorageError } from './storage-error.js';

/** One message of a conversation: what a user said, or what the bot answered. */
export interface Turn {
  role: 'user' | 'assistant';
  text: string;
  /** When it was said, in milliseconds since the epoch. */
  at: number;
}

export interface AppendOptions {
  /** The turn expires this long after `turn.at`; undefined keeps it until it is trimmed or deleted. */
  ttlMs?: number;
  /** After the append only the newest `keepLast` turns of this user remain. */
  keepLast: number;
}

/**
 * An append-only list of turns per user key. Appends are atomic in the store itself (a SQLite
 * transaction, a Redis MULTI), so any number of processes may append to one user at once; turns
 * come back in the order the appends reached the store, which within one process is the order
 * the `append` calls were made. Expired turns are never returned.
 */
export interface TurnLog {
  append(userKey: string, turn: Turn, options: AppendOptions): Promise<void>;
  /** The newest `limit` unexpired turns, oldest first. */
  recent(userKey: string, limit: number): Promise<Turn[]>;
  /** Every unexpired turn, oldest first. */
  all(userKey: string): Promise<Turn[]>;
  delete(userKey: string): Promise<void>;
}

export function checkAppendOptions(options: AppendOptions): void {
  if (!Number.isInteger(options.keepLast) || options.keepLast < 1) {
    throw new StorageError('TURN_INVALID', `keepLast must be a whole number of at least 1, got ${options.keepLast}`);
  }
  if (options.ttlMs !== undefined && !(Number.isFinite(options.ttlMs) && options.ttlMs > 0)) {
    throw new StorageError('TURN_INVALID', `ttlMs must be a positive number of milliseconds, got ${options.ttlMs}`);
  }
}

export function expiresAt(turn: Turn, ttlMs: number | undefined): number | null {
  return ttlMs === undefined ? null : turn.at + ttlMs;
}

/** Checks a turn read back from a store, so that foreign or damaged data fails loudly. */
export function parseStoredTurn(value: unknown, where: string): Turn {
  const record = value as Partial<Turn> | null;
  if (
    typeof record !== 'object' ||
    record === null ||
    (record.role !== 'user' && record.role !== 'assistant') ||
    typeof record.text !== 'string' ||
    typeof record.at !== 'number'
  ) {
    throw new StorageError('STORAGE_CORRUPT', `${where} holds a malformed turn: ${JSON.stringify(value)}`);
  }
  return { role: record.role, text: record.text, at: record.at };
}
