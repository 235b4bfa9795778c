import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaqError, type FaqRecord } from '../../src/core/faq/entry.js';
import { CLEAR_TOKEN_TTL_MS, FaqStore, faqScopeKey } from '../../src/core/faq/faq-store.js';
import type { KeyValueStore } from '../../src/core/storage/document-store.js';
import { FAQ_FORMATS, parseFaqDocument } from '../../src/core/faq/formats.js';
import { MapStore } from '../helpers/map-store.js';

/** A store whose writes of FAQ documents fail, as a full disk or a dropped connection would. */
class FailingWriteStore extends MapStore {
  failWrites = false;

  override async set(key: string, value: unknown): Promise<void> {
    if (this.failWrites) throw new Error('disk full');
    return super.set(key, value);
  }
}

async function rejectsWith(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof FaqError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

function clock(start = Date.parse('2024-05-01T12:00:00Z')): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

async function seeded(store: KeyValueStore = new MapStore(), count = 3): Promise<FaqStore> {
  const faq = FaqStore.forScope(store, 'discord:1', { now: clock().now });
  for (let i = 1; i <= count; i++) await faq.add(`Question ${i}?`, `Answer ${i}.`, i === 1 ? ['first'] : []);
  return faq;
}

describe('FaqStore: add, list, remove', () => {
  it('adds entries with generated ids and keeps one versioned document under faq:<scope>', async () => {
    const store = new MapStore();
    const faq = await seeded(store);
    const entries = await faq.entries();
    assert.deepEqual(
      entries.map((entry) => [entry.id, entry.question, entry.tags]),
      [
        ['q1', 'Question 1?', ['first']],
        ['q2', 'Question 2?', []],
        ['q3', 'Question 3?', []],
      ],
    );
    assert.equal(entries[0].updatedAt, '2024-05-01T12:00:00.000Z');
    assert.deepEqual([...store.values.keys()], ['faq:discord:1']);
    assert.equal(await faq.version(), 3);
  });

  it('refuses a question already there after normalization, naming the entry', async () => {
    const faq = await seeded();
    await rejectsWith(faq.add('  question 2 ', 'Again'), 'FAQ_DUPLICATE', /already has this question as q2: "Question 2\?"/);
    await rejectsWith(faq.add('New?', '   '), 'FAQ_INVALID', /the answer to "New\?" is empty/);
    assert.equal((await faq.entries()).length, 3);
  });

  it('lists by page', async () => {
    const faq = await seeded(new MapStore(), 7);
    const second = await faq.list(2, 3);
    assert.deepEqual(
      { ...second, entries: second.entries.map((entry) => entry.id) },
      { entries: ['q4', 'q5', 'q6'], page: 2, pages: 3, total: 7, pageSize: 3, first: 4 },
    );
    assert.deepEqual((await faq.list(3, 3)).entries.map((entry) => entry.id), ['q7']);
    await rejectsWith(faq.list(4, 3), 'FAQ_NOT_FOUND', /no page 4; the FAQ has 3 pages/);
    await rejectsWith(faq.list(1, 0), 'FAQ_INVALID', /page size must be a whole number from 1 to 100/);
    const empty = await FaqStore.forScope(new MapStore(), 'shared').list();
    assert.deepEqual([empty.total, empty.pages, empty.entries], [0, 1, []]);
  });

  it('removes by id, by position and by question; ids are never reused', async () => {
    const faq = await seeded(new MapStore(), 4);
    assert.equal((await faq.remove('q2')).id, 'q2');
    assert.equal((await faq.remove(1)).id, 'q1');
    assert.equal((await faq.remove('question 4')).id, 'q4');
    assert.deepEqual((await faq.entries()).map((entry) => entry.id), ['q3']);
    await faq.add('Fifth?', 'Yes.');
    assert.equal((await faq.remove(' 2 ')).question, 'Fifth?');
    await rejectsWith(faq.remove('q9'), 'FAQ_NOT_FOUND', /no FAQ entry has the id or question "q9"/);
    await rejectsWith(faq.remove(2), 'FAQ_NOT_FOUND', /no entry number 2; the FAQ has 1 entries/);
    assert.equal((await faq.add('Later?', 'Yes.')).id, 'q6');
  });

  it('keeps concurrent writes to one scope from overwriting each other', async () => {
    const store = new MapStore();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => FaqStore.forScope(store, 'shared').add(`Concurrent ${i}?`, 'Yes.')),
    );
    const faq = FaqStore.forScope(store, 'shared');
    assert.equal((await faq.entries()).length, 20);
    assert.equal(await faq.version(), 20);
  });

  it('keeps scopes apart; shared mode uses one scope', async () => {
    const store = new MapStore();
    const discord = FaqStore.forScope(store, faqScopeKey('per-scope', 'discord', '123'));
    const slack = FaqStore.forScope(store, faqScopeKey('per-scope', 'slack', 'T123'));
    await discord.add('Discord?', 'Yes.');
    assert.deepEqual(await slack.entries(), []);
    assert.equal(faqScopeKey('shared', 'discord', '123'), faqScopeKey('shared', 'slack', 'T9'));
    assert.deepEqual([...store.values.keys()], ['faq:discord:123']);
    assert.throws(() => FaqStore.forScope(store, 'a b'), /must be non-empty with no spaces/);
  });

  it('says so when the stored document is not an FAQ', async () => {
    const store = new MapStore();
    await store.set('faq:shared', { schema: 1, version: 2, nextId: 1, entries: [{ id: 'q1' }] });
    await rejectsWith(FaqStore.forScope(store, 'shared').entries(), 'FAQ_CORRUPT', /faq:shared is not an FAQ \(entries\.0\.question:/);
  });
});

describe('FaqStore: clear', () => {
  it('clears only with the token from requestClear, once, within 60 s', async () => {
    const time = clock();
    const store = new MapStore();
    const faq = FaqStore.forScope(store, 'shared', { now: time.now });
    await faq.add('A?', 'B.');
    await faq.add('C?', 'D.');
    await rejectsWith(faq.clear('abc'), 'FAQ_CONFIRMATION', /not the confirmation code/);

    const request = await faq.requestClear();
    assert.equal(request.total, 2);
    assert.equal(request.expiresAt, time.now() + CLEAR_TOKEN_TTL_MS);
    await rejectsWith(faq.clear(`${request.token}x`), 'FAQ_CONFIRMATION', /not the confirmation code/);
    assert.equal(await faq.clear(request.token), 2);
    assert.deepEqual(await faq.entries(), []);
    await rejectsWith(faq.clear(request.token), 'FAQ_CONFIRMATION', /not the confirmation code/);
    assert.equal((await faq.add('E?', 'F.')).id, 'q3');
  });

  it('refuses an expired token and changes nothing', async () => {
    const time = clock();
    const faq = FaqStore.forScope(new MapStore(), 'shared', { now: time.now });
    await faq.add('A?', 'B.');
    const { token } = await faq.requestClear();
    time.advance(CLEAR_TOKEN_TTL_MS + 1);
    await rejectsWith(faq.clear(token), 'FAQ_CONFIRMATION', /expired \(codes last 60 s\)/);
    assert.equal((await faq.entries()).length, 1);
  });
});

describe('FaqStore: import', () => {
  const file: FaqRecord[] = [
    { question: 'question 1', answer: 'Answer 1.', line: 2 },
    { question: 'Question 2?', answer: 'A new answer 2.', line: 3 },
    { question: 'Question 9?', answer: 'Answer 9.', tags: ['new'], line: 4 },
  ];

  it('previews what it would add, change and leave out, without writing', async () => {
    const store = new MapStore();
    const faq = await seeded(store);
    const writes = store.writes;
    const preview = await faq.previewImport(file);
    assert.equal(store.writes, writes);
    assert.deepEqual(
      preview.add.map((entry) => [entry.id, entry.question, entry.tags]),
      [['q4', 'Question 9?', ['new']]],
    );
    assert.deepEqual(
      preview.change.map(({ before, after }) => [before.id, before.question, after.id, after.question, after.answer, after.tags]),
      [
        ['q1', 'Question 1?', 'q1', 'question 1', 'Answer 1.', ['first']],
        ['q2', 'Question 2?', 'q2', 'Question 2?', 'A new answer 2.', []],
      ],
    );
    assert.equal(preview.unchanged, 0);
    assert.deepEqual(preview.remove.map((entry) => entry.id), ['q3']);
    assert.equal(preview.version, 3);
  });

  it('merge keeps entries the file lacks; replace removes them and takes the file order', async () => {
    const merged = await seeded();
    const mergeResult = await merged.applyImport(file, 'merge');
    assert.equal(mergeResult.mode, 'merge');
    assert.equal(mergeResult.version, 4);
    assert.deepEqual((await merged.entries()).map((entry) => entry.id), ['q1', 'q2', 'q3', 'q4']);

    const replaced = await seeded();
    await replaced.applyImport([...file].reverse(), 'replace');
    assert.deepEqual((await replaced.entries()).map((entry) => [entry.id, entry.question]), [
      ['q4', 'Question 9?'],
      ['q2', 'Question 2?'],
      ['q1', 'question 1'],
    ]);
  });

  it('matches by id before question, keeps tags a file does not give, and writes nothing when nothing changes', async () => {
    const store = new MapStore();
    const faq = await seeded(store);
    const renamed = await faq.applyImport([{ id: 'q1', question: 'Renamed?', answer: 'Answer 1.' }], 'merge');
    assert.deepEqual(renamed.change.map(({ after }) => [after.id, after.question, after.tags]), [['q1', 'Renamed?', ['first']]]);
    const writes = store.writes;
    const again = await faq.applyImport([{ id: 'q1', question: 'Renamed?', answer: 'Answer 1.', tags: ['first'] }], 'merge');
    assert.deepEqual([again.unchanged, again.change.length, again.version, store.writes], [1, 0, 4, writes]);
  });

  it('a bad record, a duplicate or a clash with a kept entry changes nothing', async () => {
    const store = new MapStore();
    const faq = await seeded(store);
    const before = structuredClone(store.values.get('faq:discord:1'));
    await rejectsWith(
      faq.applyImport([{ question: 'Fine?', answer: 'Yes.' }, { question: 'Empty?', answer: ' ', line: 3 }], 'replace'),
      'FAQ_INVALID',
      /^line 3: the answer to "Empty\?" is empty/,
    );
    await rejectsWith(
      faq.applyImport([{ question: 'Fine?', answer: 'Yes.', line: 2 }, { question: 'FINE', answer: 'No.', line: 3 }], 'merge'),
      'FAQ_DUPLICATE',
      /^line 3: "FINE" repeats the question "Fine\?" of line 2/,
    );
    await rejectsWith(
      faq.applyImport([{ id: 'q1', question: 'A?', answer: 'B', line: 2 }, { question: 'Question 1', answer: 'C', line: 5 }], 'merge'),
      'FAQ_DUPLICATE',
      /^line 5: "Question 1" and line 2: "A\?" both match the FAQ entry q1/,
    );
    await rejectsWith(faq.applyImport([{ id: 'q1', question: 'Question 2', answer: 'B' }], 'merge'), 'FAQ_DUPLICATE', /repeats the question/);
    await rejectsWith(faq.applyImport([], 'replace'), 'FAQ_EMPTY', /no entries/);
    assert.deepEqual(store.values.get('faq:discord:1'), before);
  });

  it('a failed write changes nothing', async () => {
    const store = new FailingWriteStore();
    const faq = await seeded(store);
    const before = structuredClone(store.values.get('faq:discord:1'));
    store.failWrites = true;
    await assert.rejects(faq.applyImport(file, 'replace'), /disk full/);
    assert.deepEqual(store.values.get('faq:discord:1'), before);
    store.failWrites = false;
    assert.equal((await faq.applyImport(file, 'replace')).version, 4);
  });

  it('refuses to apply a preview when the FAQ changed since', async () => {
    const faq = await seeded();
    const preview = await faq.previewImport(file);
    await faq.add('Meanwhile?', 'Yes.');
    await rejectsWith(faq.applyImport(file, 'merge', { expectedVersion: preview.version }), 'FAQ_CONFLICT', /changed since the preview \(version 3, now 4\)/);
    assert.equal((await faq.entries()).length, 4);
  });
});

describe('FaqStore: export and search', () => {
  for (const format of FAQ_FORMATS) {
    it(`${format}: an export imported with replace into another scope gives the same FAQ`, async () => {
      const store = new MapStore();
      const source = await seeded(store);
      await source.add('Comma, "quote"?', 'Line 1\n## Line 2, with "quotes"\n```\n# code\n```', ['a', 'b c']);
      const text = await source.export(format);
      const copy = FaqStore.forScope(store, 'slack:T1');
      await copy.applyImport(parseFaqDocument(Buffer.from(text), format).records, 'replace');
      const strip = (entries: { updatedAt: string }[]): unknown[] => entries.map(({ updatedAt: _updatedAt, ...rest }) => rest);
      assert.deepEqual(strip(await copy.entries()), strip(await source.entries()));
    });
  }

  it('searches the current entries, rebuilding when the FAQ changes', async () => {
    const faq = FaqStore.forScope(new MapStore(), 'shared');
    await faq.add('How do I reset my password?', 'Open settings and choose reset.');
    assert.deepEqual((await faq.search('refund', 3)).length, 0);
    await faq.add('Can I get a refund?', 'Refunds are possible within 30 days.');
    const hits = await faq.search('refund please', 3);
    assert.equal(hits[0].entry.question, 'Can I get a refund?');
    await faq.remove(hits[0].entry.id);
    assert.deepEqual(await faq.search('refund please', 3), []);
  });
});
