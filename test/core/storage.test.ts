import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Keyv } from 'keyv';
import { openStorage, type Storage } from '../../src/core/storage/open-storage.js';
import { SqliteKeyvStore } from '../../src/core/storage/sqlite-store.js';
import { StorageError, type StorageErrorCode } from '../../src/core/storage/storage-error.js';
import type { Turn } from '../../src/core/storage/turn-log.js';
import { backendFactories, type Backend } from './storage-backends.js';

function failsWith(code: StorageErrorCode, ...fragments: string[]) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof StorageError, `expected a StorageError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    for (const fragment of fragments) assert.ok(error.message.includes(fragment), `"${error.message}" names ${fragment}`);
    return true;
  };
}

const said = (text: string, at = Date.now()): Turn => ({ role: 'user', text, at });

for (const makeBackend of backendFactories) {
  describe(`storage on ${makeBackend.name.replace('Backend', '')}`, () => {
    let backend: Backend;
    let storage: Storage;

    before(async () => {
      backend = await makeBackend();
      storage = await backend.open();
    });
    after(async () => backend?.dispose());

    it('sets, gets, deletes and expires Keyv values', async () => {
      await storage.keyv.set('faq:count', { entries: 3, tags: ['a', 'b'] });
      assert.deepEqual(await storage.keyv.get('faq:count'), { entries: 3, tags: ['a', 'b'] });
      assert.equal(await storage.keyv.has('faq:count'), true);
      assert.equal(await storage.keyv.delete('faq:count'), true);
      assert.equal(await storage.keyv.get('faq:count'), undefined);

      await storage.keyv.set('brief', 'gone soon', 200);
      assert.equal(await storage.keyv.get('brief'), 'gone soon');
      await sleep(300);
      assert.equal(await storage.keyv.get('brief'), undefined);
    });

    it('keeps namespaces apart, in Keyv and in the turn log', async () => {
      const other = await backend.open(`${backend.namespace}-other`);
      await storage.keyv.set('greeting', 'mine');
      await other.keyv.set('greeting', 'theirs');
      await other.turns.append('u:ns', said('theirs'), { keepLast: 5 });
      assert.deepEqual(await storage.turns.all('u:ns'), []);
      await storage.keyv.clear();
      assert.equal(await storage.keyv.get('greeting'), undefined);
      assert.equal(await other.keyv.get('greeting'), 'theirs');
      await other.keyv.clear();
      await other.turns.delete('u:ns');
    });

    it('appends, reads the newest turns and deletes a user', async () => {
      const options = { keepLast: 10, ttlMs: 60_000 };
      for (const text of ['one', 'two', 'three']) await storage.turns.append('u:a', said(text), options);
      await storage.turns.append('u:b', said('other user'), options);
      assert.deepEqual((await storage.turns.all('u:a')).map((t) => t.text), ['one', 'two', 'three']);
      assert.deepEqual((await storage.turns.recent('u:a', 2)).map((t) => t.text), ['two', 'three']);
      assert.deepEqual(await storage.turns.recent('u:a', 0), []);
      await storage.turns.delete('u:a');
      assert.deepEqual(await storage.turns.all('u:a'), []);
      assert.deepEqual((await storage.turns.all('u:b')).map((t) => t.text), ['other user']);
      await storage.turns.delete('u:b');
    });

    it('trims each user to keepLast turns on append', async () => {
      for (let i = 0; i < 7; i++) await storage.turns.append('u:trim', said(`t${i}`), { keepLast: 4 });
      assert.deepEqual((await storage.turns.all('u:trim')).map((t) => t.text), ['t3', 't4', 't5', 't6']);
      await storage.turns.delete('u:trim');
    });

    it('keeps 100 concurrent appends in call order', async () => {
      await Promise.all(Array.from({ length: 100 }, (_, i) => storage.turns.append('u:burst', said(`#${i}`), { keepLast: 1000 })));
      assert.deepEqual((await storage.turns.all('u:burst')).map((t) => t.text), Array.from({ length: 100 }, (_, i) => `#${i}`));
      await storage.turns.delete('u:burst');
    });

    it('rejects a keepLast below 1 and a non-positive TTL', async () => {
      await assert.rejects(storage.turns.append('u:x', said('x'), { keepLast: 0 }), failsWith('TURN_INVALID', 'keepLast'));
      await assert.rejects(storage.turns.append('u:x', said('x'), { keepLast: 1, ttlMs: 0 }), failsWith('TURN_INVALID', 'ttlMs'));
    });

    it('leaves nothing behind once everything is deleted', async () => {
      await storage.keyv.clear();
      assert.deepEqual(await backend.redisKeys(), []);
    });
  });
}

describe('SQLite storage', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tunebot-sqlite-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('creates the folder and keeps data across a reopen', async () => {
    const url = `sqlite://${join(dir, 'a', 'b', 'bot.db')}`;
    const first = await openStorage(url);
    await first.keyv.set('setting', { fallback: 'Ask an admin.' });
    await first.turns.append('u:1', said('before restart'), { keepLast: 10, ttlMs: 60_000 });
    await first.close();
    assert.ok(existsSync(join(dir, 'a', 'b', 'bot.db')));

    const second = await openStorage(url);
    assert.deepEqual(await second.keyv.get('setting'), { fallback: 'Ask an admin.' });
    assert.deepEqual((await second.turns.all('u:1')).map((t) => t.text), ['before restart']);
    await second.close();
  });

  it('fails with STORAGE_UNAVAILABLE naming a file that is not a database', async () => {
    const path = join(dir, 'corrupt.db');
    await writeFile(path, randomBytes(8192));
    await assert.rejects(openStorage(`sqlite://${path}`), failsWith('STORAGE_UNAVAILABLE', path, 'not a database'));
  });

  it('fails with STORAGE_UNAVAILABLE when the folder cannot be made', async () => {
    const blocker = join(dir, 'a-file');
    await writeFile(blocker, 'not a folder');
    await assert.rejects(openStorage(`sqlite://${join(blocker, 'bot.db')}`), failsWith('STORAGE_UNAVAILABLE', blocker));
  });

  describe('SqliteKeyvStore', () => {
    let db: Database.Database;
    let store: SqliteKeyvStore;
    before(() => {
      db = new Database(':memory:');
      store = new SqliteKeyvStore(db, 'sqlite://:memory:');
    });
    after(() => db.close());

    it('gets, sets, deletes and honours its own TTL without Keyv', async () => {
      await store.set('k', 'v');
      assert.equal(await store.get('k'), 'v');
      assert.equal(await store.has('k'), true);
      assert.deepEqual(await store.getMany(['k', 'missing']), ['v', undefined]);
      assert.equal(await store.delete('k'), true);
      assert.equal(await store.delete('k'), false);

      await store.set('short', 'x', 50);
      await store.set('long', 'y', 60_000);
      assert.equal(await store.get('short'), 'x');
      await sleep(80);
      assert.equal(await store.get('short'), undefined);
      assert.equal(await store.has('short'), false);
      assert.equal(await store.get('long'), 'y');
      await store.set('next', 'z');
      const rows = db.prepare('SELECT key FROM keyv ORDER BY key').all() as Array<{ key: string }>;
      assert.deepEqual(rows.map((row) => row.key), ['long', 'next'], 'a write sweeps expired rows');
    });

    it('clears and iterates one namespace through Keyv', async () => {
      const alpha = new Keyv({ store, namespace: 'alpha' });
      await alpha.set('one', 1);
      await alpha.set('two', 2);
      const entries: Array<[string, unknown]> = [];
      assert.ok(alpha.iterator, 'Keyv offers iteration over the store');
      for await (const [key, value] of alpha.iterator(alpha.namespace)) entries.push([key as string, value]);
      assert.deepEqual(entries, [['one', 1], ['two', 2]]);

      // A Keyv sets the namespace of the store it is given, so each namespace gets its own Keyv in turn.
      await new Keyv({ store, namespace: 'al_ha' }).clear();
      assert.notEqual(await store.get('alpha:one'), undefined, '"_" in a namespace is no wildcard');
      await new Keyv({ store, namespace: 'alpha' }).clear();
      assert.equal(await store.get('alpha:one'), undefined);
      assert.equal(await store.get('long'), 'y', 'keys outside the namespace survive');
    });

    it('refuses values that are not strings', async () => {
      await assert.rejects(store.set('obj', { a: 1 }), /stores strings/);
    });
  });
});

describe('storage URLs', () => {
  it('fails fast with STORAGE_UNAVAILABLE when Redis refuses the connection', async () => {
    const started = Date.now();
    await assert.rejects(openStorage('redis://127.0.0.1:6390'), failsWith('STORAGE_UNAVAILABLE', 'redis://127.0.0.1:6390'));
    assert.ok(Date.now() - started < 3000, `gave up after ${Date.now() - started} ms`);
  });

  it('fails fast when a server accepts the connection but never answers', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `redis://user:secret@127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const started = Date.now();
    try {
      await assert.rejects(openStorage(url, { connectTimeoutMs: 500 }), (error: unknown) => {
        failsWith('STORAGE_UNAVAILABLE', 'no answer within 500 ms', 'user:***@')(error);
        assert.ok(!(error as Error).message.includes('secret'), 'the password is hidden');
        return true;
      });
      assert.ok(Date.now() - started < 2000, `gave up after ${Date.now() - started} ms`);
    } finally {
      silent.close();
    }
  });

  it('rejects other schemes and empty paths with STORAGE_URL_INVALID', async () => {
    await assert.rejects(openStorage('postgres://localhost/db'), failsWith('STORAGE_URL_INVALID', 'postgres://localhost/db', 'sqlite://'));
    await assert.rejects(openStorage('sqlite://'), failsWith('STORAGE_URL_INVALID'));
  });
});
