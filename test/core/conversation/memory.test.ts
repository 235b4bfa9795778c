import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ConversationMemory, userKey, type MemoryScope, type Turn } from '../../../src/core/conversation/memory.js';
import type { Storage } from '../../../src/core/storage/open-storage.js';
import { StorageError } from '../../../src/core/storage/storage-error.js';
import { backendFactories, type Backend } from '../storage-backends.js';

const guild: MemoryScope = { platform: 'discord', workspace: 'guild-1' };
const otherGuild: MemoryScope = { platform: 'discord', workspace: 'guild-2' };
const countWords = (text: string): number => text.split(/\s+/).filter(Boolean).length;

function turn(role: Turn['role'], text: string, at = Date.now()): Turn {
  return { role, text, at };
}

for (const makeBackend of backendFactories) {
  describe(`ConversationMemory on ${makeBackend.name.replace('Backend', '')}`, () => {
    let backend: Backend;
    let storage: Storage;
    let memory: ConversationMemory;

    before(async () => {
      backend = await makeBackend();
      storage = await backend.open();
      memory = new ConversationMemory(storage.turns, { ttlMs: 60_000, maxStoredTurns: 500 });
    });
    after(async () => backend?.dispose());

    it('keeps all 100 turns of 50 concurrent exchanges, in the order the calls were made', async () => {
      const pending: Array<Promise<void>> = [];
      for (let i = 0; i < 50; i++) {
        pending.push(memory.recordTurn(guild, 'busy', turn('user', `question ${i}`)));
        pending.push(memory.recordTurn(guild, 'busy', turn('assistant', `answer ${i}`)));
      }
      await Promise.all(pending);
      const expected = Array.from({ length: 50 }, (_, i) => [`user:question ${i}`, `assistant:answer ${i}`]).flat();
      const exported = await memory.exportUser(guild, 'busy');
      assert.deepEqual(exported.turns.map((t) => `${t.role}:${t.text}`), expected);
      await memory.forget(guild, 'busy');
    });

    it('keeps every turn when two connections append to one user at once', async () => {
      const second = await backend.open();
      const other = new ConversationMemory(second.turns, { ttlMs: 60_000, maxStoredTurns: 500 });
      const pending: Array<Promise<void>> = [];
      for (let i = 0; i < 50; i++) {
        pending.push(memory.recordTurn(guild, 'shared', turn('user', `a${i}`)));
        pending.push(other.recordTurn(guild, 'shared', turn('user', `b${i}`)));
      }
      await Promise.all(pending);
      const texts = (await memory.exportUser(guild, 'shared')).turns.map((t) => t.text);
      assert.equal(texts.length, 100);
      // Each connection's turns keep their own order, however the two interleave.
      assert.deepEqual(texts.filter((text) => text.startsWith('a')), Array.from({ length: 50 }, (_, i) => `a${i}`));
      assert.deepEqual(texts.filter((text) => text.startsWith('b')), Array.from({ length: 50 }, (_, i) => `b${i}`));
      await memory.forget(guild, 'shared');
    });

    it('windows the newest turns by count and by tokens, oldest first', async () => {
      // Turn i has i + 1 words.
      for (let i = 0; i < 6; i++) await memory.recordTurn(guild, 'windowed', turn(i % 2 ? 'assistant' : 'user', Array(i + 1).fill(`w${i}`).join(' ')));
      const texts = async (maxTurns: number, maxTokens: number): Promise<number[]> =>
        (await memory.recentTurns(guild, 'windowed', { maxTurns, maxTokens, countTokens: countWords })).map((t) => countWords(t.text) - 1);

      assert.deepEqual(await texts(3, 1000), [3, 4, 5]);
      assert.deepEqual(await texts(100, 1000), [0, 1, 2, 3, 4, 5]);
      assert.deepEqual(await texts(100, 6 + 5), [4, 5]);
      assert.deepEqual(await texts(100, 6 + 5 + 3), [4, 5], 'stops at the first turn that does not fit');
      assert.deepEqual(await texts(100, 5), [], 'the newest turn alone is too long');
      assert.deepEqual(await texts(2, 1000), [4, 5]);
      assert.deepEqual(await texts(0, 1000), []);
      await memory.forget(guild, 'windowed');
    });

    it('drops turns once their TTL has passed', async () => {
      const shortLived = new ConversationMemory(storage.turns, { ttlMs: 1000, maxStoredTurns: 50 });
      await shortLived.recordTurn(guild, 'fleeting', turn('user', 'remember me briefly'));
      await shortLived.recordTurn(guild, 'fleeting', turn('user', 'already old', Date.now() - 5000));
      const window = { maxTurns: 10, maxTokens: 100, countTokens: countWords };
      assert.deepEqual((await shortLived.recentTurns(guild, 'fleeting', window)).map((t) => t.text), ['remember me briefly']);
      if (backend.name === 'redis') {
        const ttl = await backend.redisPttl(`${backend.namespace}:turns:${userKey(guild, 'fleeting')}`);
        assert.ok(ttl > 0 && ttl <= 1000, `the Redis list expires with the TTL, PTTL ${ttl}`);
      }
      await sleep(1100);
      assert.deepEqual(await shortLived.recentTurns(guild, 'fleeting', window), []);
      assert.deepEqual((await shortLived.exportUser(guild, 'fleeting')).turns, []);
      if (backend.name === 'redis') assert.deepEqual(await backend.redisKeys(), [], 'Redis deleted the expired list');
    });

    it('keeps at most maxStoredTurns per user, dropping the oldest', async () => {
      const small = new ConversationMemory(storage.turns, { ttlMs: 60_000, maxStoredTurns: 3 });
      for (let i = 0; i < 5; i++) await small.recordTurn(guild, 'capped', turn('user', `m${i}`));
      assert.deepEqual((await small.exportUser(guild, 'capped')).turns.map((t) => t.text), ['m2', 'm3', 'm4']);
      await small.forget(guild, 'capped');
    });

    it('forgets one user in one scope and nobody else', async () => {
      await memory.recordTurn(guild, 'alice', turn('user', 'alice here'));
      await memory.recordTurn(guild, 'alice', turn('assistant', 'hello alice'));
      await memory.recordTurn(guild, 'bob', turn('user', 'bob here'));
      await memory.recordTurn(otherGuild, 'alice', turn('user', 'alice elsewhere'));
      await memory.forget(guild, 'alice');
      assert.deepEqual((await memory.exportUser(guild, 'alice')).turns, []);
      assert.deepEqual((await memory.exportUser(guild, 'bob')).turns.map((t) => t.text), ['bob here']);
      assert.deepEqual((await memory.exportUser(otherGuild, 'alice')).turns.map((t) => t.text), ['alice elsewhere']);
      await memory.forget(guild, 'bob');
      await memory.forget(otherGuild, 'alice');
      assert.deepEqual(await backend.redisKeys(), []);
    });

    it('exports every turn of a user as plain JSON', async () => {
      // Without a TTL, turns from long ago are still there.
      const lasting = new ConversationMemory(storage.turns, { maxStoredTurns: 10 });
      const at = Date.UTC(2025, 0, 2, 3, 4, 5);
      await lasting.recordTurn(guild, 'exporter', turn('user', 'how do I reset?', at));
      await lasting.recordTurn(guild, 'exporter', turn('assistant', 'Settings → Reset, "quotes" and ünïcode', at + 1000));
      const exported = await lasting.exportUser(guild, 'exporter');
      assert.deepEqual(JSON.parse(JSON.stringify(exported)), exported);
      assert.equal(exported.userId, 'exporter');
      assert.equal(exported.platform, 'discord');
      assert.equal(exported.workspace, 'guild-1');
      assert.deepEqual(exported.turns, [
        { role: 'user', text: 'how do I reset?', at: '2025-01-02T03:04:05.000Z' },
        { role: 'assistant', text: 'Settings → Reset, "quotes" and ünïcode', at: '2025-01-02T03:04:06.000Z' },
      ]);
      await lasting.forget(guild, 'exporter');
    });

    it('rejects malformed turns and windows with TURN_INVALID', async () => {
      const invalid = (error: unknown) => error instanceof StorageError && error.code === 'TURN_INVALID';
      await assert.rejects(memory.recordTurn(guild, 'x', { role: 'system' as Turn['role'], text: 'hi', at: Date.now() }), invalid);
      await assert.rejects(memory.recordTurn(guild, 'x', { role: 'user', text: 'hi', at: Number.NaN }), invalid);
      await assert.rejects(memory.recordTurn(guild, '', turn('user', 'hi')), invalid);
      await assert.rejects(memory.recentTurns(guild, 'x', { maxTurns: -1, maxTokens: 10, countTokens: countWords }), invalid);
      assert.deepEqual((await memory.exportUser(guild, 'x')).turns, []);
    });
  });
}

describe('userKey', () => {
  it('is platform:workspace:user, with colons inside ids encoded', () => {
    assert.equal(userKey({ platform: 'slack', workspace: 'T01' }, 'U02'), 'slack:T01:U02');
    assert.notEqual(userKey({ platform: 'slack', workspace: 'a:b' }, 'c'), userKey({ platform: 'slack', workspace: 'a' }, 'b:c'));
  });
});
