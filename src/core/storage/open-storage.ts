import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import KeyvRedis, { createClient } from '@keyv/redis';
import { Keyv } from 'keyv';
import { silentLogger, type Logger } from '../../log.js';
import { KeyvDocumentStore, type KeyValueStore } from './document-store.js';
import { RedisCompareAndSet } from './redis-compare-and-set.js';
import { RedisTurnLog, type RedisClient } from './redis-turn-log.js';
import { SqliteKeyvStore } from './sqlite-store.js';
import { SqliteTurnLog } from './sqlite-turn-log.js';
import { StorageError } from './storage-error.js';
import type { TurnLog } from './turn-log.js';

/** One SQLite file under the working folder: nothing to run. */
export const DEFAULT_STORAGE_URL = 'sqlite://data/tunebot.db';

export interface Storage {
  /** Key-value data for the rest of the engine, under the storage namespace. */
  keyv: Keyv;
  /** The same data as `keyv`, with updates that are atomic across every process sharing the store. */
  documents: KeyValueStore;
  /** Per-user conversation turns, in the same store as `keyv`. */
  turns: TurnLog;
  /** When the store is Redis: the parts that instances share (job queue, model-change events, seen Slack events) use its connection too. */
  shared: SharedRedis | null;
  close(): Promise<void>;
}

/** A Redis connection and the namespace every key of this bot starts with. */
export interface SharedRedis {
  readonly redis: RedisClient;
  readonly namespace: string;
}

export interface StorageOptions {
  /** Goes before every key, so that several bots (or test runs) can share one Redis. */
  namespace?: string;
  /** How long to wait for Redis at startup before failing. */
  connectTimeoutMs?: number;
  /** Where Redis connection trouble after startup is reported. */
  logger?: Logger;
}

/**
 * Opens the store a URL names:
 * - `sqlite://path/to/file.db` (relative to the working folder; `sqlite:///abs/file.db` for an
 *   absolute path): the folder is created, the file opened in WAL mode;
 * - `redis://[user:password@]host:port[/db]` or `rediss://...` (TLS).
 * Fails fast with STORAGE_UNAVAILABLE, naming the URL (password hidden), when the store cannot
 * be opened or reached, and with STORAGE_URL_INVALID for any other URL.
 */
export async function openStorage(url: string = DEFAULT_STORAGE_URL, options: StorageOptions = {}): Promise<Storage> {
  const namespace = options.namespace ?? 'tunebot';
  if (url.startsWith('sqlite://')) return openSqlite(url, namespace);
  if (url.startsWith('redis://') || url.startsWith('rediss://')) return openRedis(url, namespace, options);
  throw new StorageError('STORAGE_URL_INVALID', `unsupported storage URL "${redactUrl(url)}": expected sqlite://path/to/file.db or redis://host:port/db`);
}

function openSqlite(url: string, namespace: string): Storage {
  const path = url.slice('sqlite://'.length);
  if (path === '') throw new StorageError('STORAGE_URL_INVALID', `storage URL "${url}" names no file: expected sqlite://path/to/file.db`);
  let db: Database.Database | undefined;
  try {
    mkdirSync(dirname(resolve(path)), { recursive: true });
    // A busy file (another process writing) is waited on rather than failed at once.
    db = new Database(path, { timeout: 5000 });
    // The first statement reads the header, so a file that is not a database fails here.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const store = new SqliteKeyvStore(db, url);
    const turns = new SqliteTurnLog(db, `${namespace}:turns:`);
    const keyv = new Keyv({ store, namespace, throwOnErrors: true });
    const documents = new KeyvDocumentStore(keyv, store, (key) => `${namespace}:${key}`);
    const opened = db;
    return { keyv, documents, turns, shared: null, close: async () => void opened.close() };
  } catch (error) {
    db?.close();
    throw new StorageError('STORAGE_UNAVAILABLE', `cannot open SQLite storage ${url}: ${(error as Error).message}; check that its folder is writable and the file is a tunebot database, or set storage.url (TUNEBOT_STORAGE_URL)`, { cause: error });
  }
}

async function openRedis(url: string, namespace: string, options: StorageOptions): Promise<Storage> {
  const shownUrl = redactUrl(url);
  const logger = options.logger ?? silentLogger;
  const timeoutMs = options.connectTimeoutMs ?? 2000;
  let started = false;
  const client: RedisClient = createClient({
    url,
    socket: {
      connectTimeout: timeoutMs,
      // At startup a refusal ends the attempt; once running, retry with backoff up to 5 s.
      reconnectStrategy: (retries, cause) => (started ? Math.min(100 * 2 ** retries, 5000) : cause),
    },
  });
  // Without a listener node-redis would crash the process on a dropped connection.
  client.on('error', (error: Error) => {
    if (started) logger.warn({ err: error, url: shownUrl }, 'Redis connection error');
  });
  try {
    await settleWithin(client.connect(), timeoutMs, `no answer within ${timeoutMs} ms`);
  } catch (error) {
    if (client.isOpen) client.destroy();
    throw new StorageError('STORAGE_UNAVAILABLE', `cannot reach Redis storage ${shownUrl}: ${describe(error)}; start Redis there, or point storage.url (TUNEBOT_STORAGE_URL) at one that runs`, { cause: error });
  }
  started = true;
  // KeyvRedis prefixes keys itself ("namespace::key"); the turn lists use "namespace:turns:".
  const store = new KeyvRedis(client, { namespace, throwOnErrors: true, throwOnConnectError: true });
  const keyv = new Keyv({ store, namespace, useKeyPrefix: false, throwOnErrors: true });
  const turns = new RedisTurnLog(client, `${namespace}:turns:`);
  const documents = new KeyvDocumentStore(keyv, new RedisCompareAndSet(client), (key) => `${namespace}::${key}`);
  return {
    keyv,
    documents,
    turns,
    shared: { redis: client, namespace },
    close: async () => {
      if (client.isOpen) await client.close();
    },
  };
}

/** The socket's connect timeout covers TCP only; a server that accepts and stays silent needs this. */
async function settleWithin<T>(promise: Promise<T>, ms: number, timeoutMessage: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(timeoutMessage)), ms);
  });
  promise.catch(() => {}); // a connect that fails after the timeout is already reported
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/([^/@]*):([^/@]*)@/, '//$1:***@');
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(describe).join('; ');
  const message = error instanceof Error ? error.message : String(error);
  return message || (error as { code?: string }).code || 'unknown error';
}
