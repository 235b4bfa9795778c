import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createClient } from '@keyv/redis';
import { openStorage, type Storage } from '../../src/core/storage/open-storage.js';

/** CI runs a Redis here; when it is missing the Redis suites fail rather than skip. */
export const REDIS_URL = process.env.TUNEBOT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * One store under test. Every `open()` of a backend reaches the same data (the same SQLite
 * file, the same Redis namespace), as separate processes of one bot would.
 */
export interface Backend {
  name: 'sqlite' | 'redis';
  /** The storage URL, for a child process to open the same store. */
  url: string;
  namespace: string;
  /** Opens the backend's store, under its own namespace unless another is given. */
  open(namespace?: string): Promise<Storage>;
  /** Redis keys whose names start with this backend's namespace (none for SQLite). */
  redisKeys(): Promise<string[]>;
  /** Milliseconds a Redis key has left to live. */
  redisPttl(key: string): Promise<number>;
  dispose(): Promise<void>;
}

export async function sqliteBackend(): Promise<Backend> {
  const dir = await mkdtemp(join(tmpdir(), 'tunebot-storage-'));
  const url = `sqlite://${join(dir, 'nested', 'tunebot.db')}`;
  const opened: Storage[] = [];
  return {
    name: 'sqlite',
    url,
    namespace: 'tunebot',
    open: async (namespace) => {
      const storage = await openStorage(url, { namespace });
      opened.push(storage);
      return storage;
    },
    redisKeys: async () => [],
    redisPttl: async () => -2,
    dispose: async () => {
      for (const storage of opened) await storage.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function redisBackend(): Promise<Backend> {
  const namespace = `tunebot-test-${process.pid}-${randomUUID().slice(0, 8)}`;
  // Fails at once when Redis is missing, rather than retrying forever.
  const admin = createClient({ url: REDIS_URL, socket: { reconnectStrategy: false, connectTimeout: 2000 } });
  admin.on('error', () => {});
  await admin.connect();
  const opened: Storage[] = [];
  const redisKeys = async (): Promise<string[]> => {
    const keys: string[] = [];
    for await (const batch of admin.scanIterator({ MATCH: `${namespace}*`, COUNT: 500 })) keys.push(...batch);
    return keys.sort();
  };
  return {
    name: 'redis',
    url: REDIS_URL,
    namespace,
    open: async (other) => {
      const storage = await openStorage(REDIS_URL, { namespace: other ?? namespace });
      opened.push(storage);
      return storage;
    },
    redisKeys,
    redisPttl: (key) => admin.pTTL(key),
    dispose: async () => {
      for (const storage of opened) await storage.close();
      const leftovers = await redisKeys();
      if (leftovers.length > 0) await admin.del(leftovers);
      await admin.close();
    },
  };
}

export const backendFactories = [sqliteBackend, redisBackend];
