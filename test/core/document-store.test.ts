import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FaqStore } from '../../src/core/faq/faq-store.js';
import { Inbox } from '../../src/core/conversation/inbox.js';
import { ConversationMemory } from '../../src/core/conversation/memory.js';
import type { Storage } from '../../src/core/storage/open-storage.js';
import { StorageError } from '../../src/core/storage/storage-error.js';
import { backendFactories, type Backend } from './storage-backends.js';

const run = promisify(execFile);
const WRITER = fileURLToPath(new URL('../helpers/shared-store-writer.ts', import.meta.url));

const increment = (current: unknown) => ({ value: ((current as number | undefined) ?? 0) + 1, result: ((current as number | undefined) ?? 0) + 1 });

for (const makeBackend of backendFactories) {
  describe(`documents on ${makeBackend.name.replace('Backend', '')}`, () => {
    let backend: Backend;
    let first: Storage;
    let second: Storage;

    before(async () => {
      backend = await makeBackend();
      first = await backend.open();
      second = await backend.open();
    });
    after(async () => backend?.dispose());

    it('updates a value, creates a missing one, and writes nothing when the change says so', async () => {
      assert.equal(await first.documents.update('counter', increment), 1);
      assert.equal(await first.documents.update('counter', increment), 2);
      assert.equal(await first.documents.update('counter', (current) => ({ result: `saw ${String(current)}` })), 'saw 2');
      assert.equal(await second.documents.get('counter'), 2);
    });

    it('reads what plain sets wrote, and plain gets read what updates wrote', async () => {
      await first.documents.set('shared', { tags: ['a'], count: 1 });
      await second.documents.update('shared', (current) => {
        const value = current as { tags: string[]; count: number };
        return { value: { tags: [...value.tags, 'b'], count: value.count + 1 }, result: null };
      });
      assert.deepEqual(await first.keyv.get('shared'), { tags: ['a', 'b'], count: 2 });
    });

    it('loses no update when two connections race on one key', async () => {
      // Each read-modify-write awaits between its read and its write, so the two stores interleave.
      await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? first : second).documents.update('raced', increment)));
      assert.equal(await first.documents.get('raced'), 40);
    });

    it('leaves the value as it was when the change throws', async () => {
      await first.documents.set('kept', 'as it was');
      await assert.rejects(
        first.documents.update('kept', () => {
          throw new RangeError('refused');
        }),
        /refused/,
      );
      assert.equal(await first.documents.get('kept'), 'as it was');
    });

    it('reports a stored value it cannot read as STORAGE_CORRUPT', async () => {
      await first.keyv.store.set(backend.name === 'redis' ? 'broken' : `${backend.namespace}:broken`, '{not json');
      await assert.rejects(first.documents.update('broken', increment), (error) => error instanceof StorageError && error.code === 'STORAGE_CORRUPT' && /broken/.test(error.message));
    });

    it('keeps every FAQ entry, inbox item and turn when two processes write them at once', async () => {
      const namespace = `${backend.namespace}-processes`;
      const count = 25;
      await Promise.all(['A', 'B'].map((writer) => run(process.execPath, ['--import', 'tsx', WRITER, backend.url, namespace, writer, String(count)], { timeout: 60_000 })));
      const storage = await backend.open(namespace);
      const entries = await FaqStore.forScope(storage.documents, 'shared').entries();
      assert.equal(entries.length, 2 * count);
      assert.equal(new Set(entries.map((entry) => entry.id)).size, 2 * count, 'every entry got its own id');
      assert.equal((await new Inbox(storage.documents, 'shared').items()).length, 2 * count);
      const turns = (await new ConversationMemory(storage.turns).exportUser({ platform: 'local', workspace: 'cluster' }, 'same-user')).turns;
      assert.equal(turns.length, 2 * count);
      for (const writer of ['A', 'B']) {
        const own = turns.filter((turn) => turn.text.startsWith(writer)).map((turn) => turn.text);
        assert.equal(own.length, count, `all of ${writer}'s turns are kept`);
      }
    });
  });
}
