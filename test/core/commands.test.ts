import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { FAQ_FILE_EXTENSIONS, FAQ_FORMATS, MAX_FAQ_FILE_BYTES, parseFaqDocument, toFaqFormat } from '../../src/core/faq/formats.js';
import type { Attachment } from '../../src/core/conversation/message.js';
import { exportedEntries, faqEntries, PNG_SIGNATURE } from '../helpers/reply-files.js';
import { ask, askForFiles, attachment, type EngineFixture, localMessage, startEngineFixture } from './engine-fixture.js';

const EVERYONE = ['help', 'ask', 'forget', 'export', 'faq list', 'faq export', 'faq synonyms', 'model status', 'model versions'];
const ADMINS_ONLY = ['faq add', 'faq import', 'faq remove', 'faq clear', 'faq inbox', 'faq inbox answer', 'faq inbox link', 'faq synonyms add', 'faq synonyms remove', 'model finetune', 'model cancel', 'model use', 'model eval'];

/** The commands a help text lists: each line's leading lower-case words ("/faq inbox answer <number> ..." -> "faq inbox answer"). */
function listedCommands(help: string): string[] {
  return help
    .split('\n')
    .filter((line) => line.startsWith('/'))
    .map((line) => {
      const words = line.slice(1).split(' ');
      const end = words.findIndex((word) => !/^[a-z]+$/.test(word));
      return words.slice(0, end === -1 ? words.length : end).join(' ');
    });
}

describe('commands', () => {
  let fixture: EngineFixture;
  /** Bob is a user; admin has the platform's admin right; alice is an admin by config (local:alice). */
  const bob = (text: string, attachments: Attachment[] = []) => ask(fixture.engine, localMessage('bob', text, { attachments }));
  const admin = (text: string, attachments: Attachment[] = []) => ask(fixture.engine, localMessage('admin', text, { platformAdmin: true, attachments }));
  const questions = async () => (await fixture.faq.entries()).map((entry) => entry.question);
  const setFaq = async (pairs: [string, string][]) => {
    const { token } = await fixture.faq.requestClear();
    await fixture.faq.clear(token);
    if (pairs.length > 0) await fixture.faq.applyImport(pairs.map(([question, answer]) => ({ question, answer })), 'merge');
    await fixture.faq.setSynonyms([], 'replace');
  };
  const idOf = async (question: string) => (await fixture.faq.entries()).find((entry) => entry.question === question)?.id;

  before(async () => {
    fixture = await startEngineFixture({
      TUNEBOT_ENGINE_ADMINS: '["local:alice"]',
      TUNEBOT_ENGINE_RATE_LIMIT_BURST: '100',
      // The shortest fine-tune: one step on the two entries asked once, kept (not made live) by the gate.
      TUNEBOT_FINE_TUNE_EPOCHS: '1',
      TUNEBOT_FINE_TUNE_NOISY_QUESTIONS: '0',
      TUNEBOT_FINE_TUNE_HELD_OUT_QUESTIONS: '0',
      TUNEBOT_FINE_TUNE_GATE: 'hold',
    });
  });
  after(async () => fixture?.close());
  beforeEach(async () => {
    await setFaq([
      ['How do I reset my password?', 'Use the reset link on the sign-in page.'],
      ['Where are the invoices?', 'Under Billing, then Invoices.'],
    ]);
  });

  describe('help and rights', () => {
    it('lists only the commands a user may run; an admin sees them all', async () => {
      assert.deepEqual(listedCommands(await bob('/help')).sort(), [...EVERYONE].sort());
      assert.deepEqual(listedCommands(await admin('/help')).sort(), [...EVERYONE, ...ADMINS_ONLY].sort());
    });

    it('answers an unknown command with the help, not silence', async () => {
      const reply = await bob('/frobnicate the widgets');
      assert.match(reply, /^I do not know the command "\/frobnicate"\.\nAsk me a question, or use a command:\n/);
      assert.deepEqual(listedCommands(reply).sort(), [...EVERYONE].sort());
      assert.match(await bob('/'), /^I do not know the command "\/"\.\nAsk me a question/);
    });

    it('refuses admin commands from a user with a clear line, and changes nothing', async () => {
      await fixture.publishVersion();
      const { registry, model } = fixture.app.services;
      const live = await registry.currentVersion();
      const faqBefore = await fixture.faq.export('json');
      const attempts: [string, string][] = [
        ['/faq add "Is this allowed?" "No."', 'faq add'],
        ['/faq clear', 'faq clear'],
        ['/faq remove 1', 'faq remove'],
        ['/faq import replace', 'faq import'],
        ['/faq inbox answer 1 "No."', 'faq inbox answer'],
        ['/faq inbox link 1 q1', 'faq inbox link'],
        ['/faq synonyms add refund "money back"', 'faq synonyms add'],
        ['/model use v2', 'model use'],
        ['/model finetune', 'model finetune'],
        ['/model cancel', 'model cancel'],
      ];
      for (const [text, words] of attempts) {
        assert.equal(await bob(text, [attachment('faq.csv', 'question,answer\nQ?,A.\n')]), `/${words} is for admins only. /help lists what you can use.`);
      }
      assert.equal(await fixture.faq.export('json'), faqBefore);
      assert.equal(await registry.currentVersion(), live);
      assert.equal(model.version, live);
    });

    it('takes admins from the platform right and from config engine.admins, by platform and id', async () => {
      assert.match(await admin('/faq add "Who runs this?" "The support team."'), /^Added q\d+: "Who runs this\?"$/);
      assert.match(await ask(fixture.engine, localMessage('alice', '/faq add "Can I pay yearly?" "Yes."')), /^Added q\d+: "Can I pay yearly\?"$/);
      // local:alice is an admin; alice on another platform is someone else.
      assert.equal(await ask(fixture.engine, localMessage('alice', '/faq add "Sneaky?" "Yes."', { platform: 'discord' })), '/faq add is for admins only. /help lists what you can use.');
      assert.deepEqual((await questions()).slice(2), ['Who runs this?', 'Can I pay yearly?']);
    });

    it('answers /ask like a question', async () => {
      assert.equal(await bob('/ask How do I reset my password?'), 'Use the reset link on the sign-in page.');
    });
  });

  describe('faq', () => {
    it('adds entries, refuses duplicates and a missing answer, and lists them a page at a time', async () => {
      await setFaq([]);
      assert.equal(await bob('/faq list'), 'The FAQ is empty. Admins add entries with /faq add or /faq import.');
      for (let i = 1; i <= 12; i++) assert.match(await admin(`/faq add "Question number ${i}?" "Answer ${i}." tag${i}`), new RegExp(`^Added q\\d+: "Question number ${i}\\?"$`));
      assert.deepEqual((await fixture.faq.entries())[0].tags, ['tag1']);
      assert.match(await admin('/faq add "question NUMBER 1" "Again."'), /^Could not do that: the FAQ already has this question as q\d+/);
      assert.match(await admin('/faq add "Only a question?"'), /^Give the question and the answer, each in quotes\.\nUsage: \/faq add /);

      const ids = (await fixture.faq.entries()).map((entry) => entry.id);
      const first = (await bob('/faq list')).split('\n');
      assert.equal(first[0], 'FAQ page 1/2 (12 entries):');
      assert.deepEqual(first.slice(1), Array.from({ length: 10 }, (_, i) => `${i + 1}. Question number ${i + 1}? (${ids[i]})`));
      assert.deepEqual((await bob('/faq list 2')).split('\n').slice(1), [`11. Question number 11? (${ids[10]})`, `12. Question number 12? (${ids[11]})`]);
      assert.equal(await bob('/faq list 3'), 'Could not do that: there is no page 3; the FAQ has 2 pages');
      assert.match(await bob('/faq list two'), /^"two" is not a page number\.\nUsage: \/faq list \[page\]$/);
    });

    it('removes an entry by its number and by its id', async () => {
      await setFaq([
        ['First?', 'One.'],
        ['Second?', 'Two.'],
        ['Third?', 'Three.'],
      ]);
      assert.equal(await admin('/faq remove 2'), 'Removed "Second?".');
      assert.deepEqual(await questions(), ['First?', 'Third?']);
      const third = (await fixture.faq.entries())[1];
      assert.equal(await admin(`/faq remove ${third.id}`), 'Removed "Third?".');
      assert.deepEqual(await questions(), ['First?']);
      assert.equal(await admin('/faq remove 7'), 'Could not do that: there is no entry number 7; the FAQ has 1 entries');
      assert.match(await admin('/faq remove'), /^Give the entry number from \/faq list, or its id\.\nUsage: /);
      assert.deepEqual(await questions(), ['First?']);
    });

    it('exports the FAQ as a file in every format, each of which reads back as the same entries', async () => {
      const expected = await faqEntries(fixture.faq);
      for (const name of [...FAQ_FORMATS, 'md', 'yml']) {
        const format = toFaqFormat(name);
        const { text, files } = await askForFiles(fixture.engine, localMessage('bob', `/faq export ${name}`));
        assert.deepEqual([text, files.map((file) => file.name)], ['', [`faq${FAQ_FILE_EXTENSIONS[format]}`]], name);
        assert.equal(files[0].title, `The FAQ (2 entries) as ${format}.`);
        assert.deepEqual(exportedEntries(files[0].data, format), expected, name);
      }
      const [json] = (await askForFiles(fixture.engine, localMessage('bob', '/faq export json'))).files;
      assert.equal(json.contentType, 'application/json');
      const [markdown] = (await askForFiles(fixture.engine, localMessage('bob', '/faq export'))).files;
      assert.deepEqual([markdown.name, new TextDecoder().decode(markdown.data)], ['faq.md', await fixture.faq.export('markdown')]);
      assert.match(await bob('/faq export xml'), /^Could not do that: unknown FAQ format "xml"/);
      await setFaq([]);
      assert.deepEqual(await askForFiles(fixture.engine, localMessage('bob', '/faq export csv')), { text: 'The FAQ is empty: there is nothing to export.', files: [] });
    });

    it('clears only with the confirmation code it gave, once', async () => {
      const request = await admin('/faq clear');
      const token = /^This removes all 2 entries\. To confirm within a minute, send: \/faq clear (\S+)$/.exec(request)?.[1];
      assert.ok(token, request);
      assert.equal((await questions()).length, 2);
      assert.match(await admin('/faq clear nope'), /^Could not do that: "nope" is not the confirmation code/);
      assert.equal((await questions()).length, 2);
      assert.equal(await admin(`/faq clear ${token}`), 'Cleared the FAQ (2 entries removed).');
      assert.deepEqual(await questions(), []);
      assert.match(await admin(`/faq clear ${token}`), /^Could not do that: "\S+" is not the confirmation code/);
    });

    it('imports an attached file: preview changes nothing, merge keeps entries the file lacks, replace removes them', async () => {
      const file = attachment('faq.csv', 'question,answer\nWhere are the invoices?,In Billing > Invoices.\nHow do I cancel?,Under Plan.\n');
      const preview = await admin('/faq import preview', [file]);
      assert.equal(
        preview,
        'Preview of faq.csv (merge; nothing changed yet):\n+ 1 new\n~ 1 changed\n= 0 unchanged\n(1 not in the file, kept)\n  + How do I cancel?\n  ~ Where are the invoices?',
      );
      assert.deepEqual(await questions(), ['How do I reset my password?', 'Where are the invoices?']);

      assert.match(await admin('/faq import merge', [file]), /^Imported faq\.csv \(merge\):\n\+ 1 new\n~ 1 changed\n/);
      const merged = await fixture.faq.entries();
      assert.deepEqual(merged.map((entry) => entry.question), ['How do I reset my password?', 'Where are the invoices?', 'How do I cancel?']);
      assert.equal(merged[1].answer, 'In Billing > Invoices.');

      const replacement = attachment('faq.json', JSON.stringify([{ question: 'How do I cancel?', answer: 'Under Plan.' }, { question: 'Is there an API?', answer: 'Yes.' }]));
      const previewReplace = await admin('/faq import replace preview', [replacement]);
      assert.match(previewReplace, /^Preview of faq\.json \(replace; nothing changed yet\):\n\+ 1 new\n~ 0 changed\n= 1 unchanged\n- 2 removed\n/);
      assert.equal((await questions()).length, 3);
      assert.match(await admin('/faq import replace', [replacement]), /^Imported faq\.json \(replace\):\n.*\n.*\n.*\n- 2 removed/);
      assert.deepEqual(await questions(), ['How do I cancel?', 'Is there an API?']);

      assert.match(await admin('/faq import'), /^Attach the FAQ file to the command\.\nUsage: \/faq import/);
      assert.match(await admin('/faq import', [attachment('faq.txt', 'Q?,A.')]), /^Could not do that: cannot tell the format of "faq\.txt"/);
    });

    it('refuses binary, empty, oversized and non-UTF-8 files with a clear reply, and leaves the FAQ as it was', async () => {
      const before = await fixture.faq.export('json');
      const version = await fixture.faq.version();
      const oversized = new Uint8Array(MAX_FAQ_FILE_BYTES + 1).fill(0x61);
      const files: [Attachment, RegExp][] = [
        [attachment('faq.csv', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00])), /^Could not do that: the file looks binary \(a NUL byte at byte 8\)/],
        [attachment('faq.md', new Uint8Array(0)), /^Could not do that: the file is empty$/],
        [attachment('faq.json', oversized), /^Could not do that: the file is 50\.00 MB; FAQ files can be at most 50 MB$/],
        [attachment('faq.csv', new Uint8Array([...new TextEncoder().encode('question,answer\nCaf'), 0xe9, ...new TextEncoder().encode('?,Yes.\n')])), /^Could not do that: line 2: the file is not UTF-8 text \(byte 0xe9 at byte 19\)/],
      ];
      for (const [file, reply] of files) {
        assert.match(await admin('/faq import replace', [file]), reply, file.name);
        assert.match(await admin('/faq import preview', [file]), reply, file.name);
      }
      assert.equal(await fixture.faq.export('json'), before);
      assert.equal(await fixture.faq.version(), version);
    });

    it('collects questions it could not answer in the inbox, and an admin turns one into an entry', async () => {
      const inbox = fixture.app.services.inboxFor(localMessage('admin', ''));
      while ((await inbox.items()).length > 0) await inbox.take(1);
      assert.equal(await admin('/faq inbox'), 'The inbox is empty.');
      const question = 'Do you ship to Antarctica?';
      assert.equal(await bob(question), fixture.config.engine.fallback);
      const listed = await admin('/faq inbox');
      assert.match(listed, new RegExp(`^1\\. Do you ship to Antarctica\\? \\(asked ${new Date().toISOString().slice(0, 10)}, best match 0\\)\\nTurn one into an FAQ entry: /faq inbox answer <number> "the answer"; or teach me that it asks an existing entry: /faq inbox link <number> <entry>$`));
      assert.equal(await admin('/faq inbox answer 2 "Yes."'), 'Could not do that: there is no inbox item 2; /faq inbox lists them');
      assert.match(await admin('/faq inbox answer 1'), /^Give the inbox number and the answer in quotes\.\nUsage: /);
      assert.match(await admin('/faq inbox answer 1 "Yes, by sled."'), /^Added q\d+: "Do you ship to Antarctica\?"$/);
      assert.equal(await admin('/faq inbox'), 'The inbox is empty.');
      assert.equal(await bob(question), 'Yes, by sled.');
    });

    it('links an inbox question to an entry as another phrasing, which then answers it; a failed link keeps the question', async () => {
      const inbox = fixture.app.services.inboxFor(localMessage('admin', ''));
      while ((await inbox.items()).length > 0) await inbox.take(1);
      const faq = fixture.app.services.faqFor(localMessage('admin', ''));
      const entry = await faq.add('How do I wire money to the club?', 'Send it to account 12-34 with your name.');
      const question = 'can i pay by bank transfer';
      assert.equal(await bob(question), fixture.config.engine.fallback);
      assert.match(await admin('/faq inbox link 1'), /^Give the inbox number and the entry/);
      assert.match(await admin('/faq inbox link x q1'), /^"x" is not a inbox number/);
      assert.match(await admin('/faq inbox link 1 no-such-entry'), /^Could not do that: no FAQ entry has the id or question "no-such-entry"/);
      assert.equal((await inbox.items()).length, 1, 'the failed link put the question back');
      assert.equal(await admin(`/faq inbox link 1 ${entry.id}`), `Linked "${question}" to ${entry.id} ("${entry.question}"); it has 1 other phrasing. The next fine-tune trains on it.`);
      assert.equal(await admin('/faq inbox'), 'The inbox is empty.');
      assert.deepEqual((await faq.entries()).find((e) => e.id === entry.id)?.alternates, [question]);
      assert.equal(await bob('Can I pay by bank transfer?'), 'Send it to account 12-34 with your name.');
      await faq.remove(entry.id);
    });

    it('keeps the inbox question when turning it into an entry fails', async () => {
      const inbox = fixture.app.services.inboxFor(localMessage('admin', ''));
      while ((await inbox.items()).length > 0) await inbox.take(1);
      const question = 'Do you rent out kayaks?';
      assert.equal(await bob(question), fixture.config.engine.fallback);
      const faq = fixture.app.services.faqFor(localMessage('admin', ''));
      const entry = await faq.add(question, 'No, only bikes.');
      assert.match(await admin('/faq inbox answer 1 "Yes."'), /^Could not do that: the FAQ already has this question/);
      assert.deepEqual((await inbox.items()).map((item) => item.question), [question]);
      await faq.remove(entry.id);
      await inbox.take(1);
    });

    it('keeps a synonym list that retrieval uses, and refuses one that would match everything', async () => {
      const faq = fixture.app.services.faqFor(localMessage('admin', ''));
      const entry = await faq.add('How do I get reimbursed for a faulty kettle?', 'Bring the receipt to the front desk.');
      assert.match(await bob('/faq synonyms'), /^The FAQ has no synonyms of its own/);
      assert.match(await bob('/faq synonyms add "money back" reimbursed'), /is for admins only/);
      assert.match(await admin('/faq synonyms add "money back"'), /^Give two or more words or phrases/);
      assert.match(await admin('/faq synonyms add "the" "a"'), /^Could not do that: synonym group 1: "the" has no word that is not a stopword/);
      assert.equal(await admin('/faq synonyms add "money back" reimbursed'), 'The synonym list has 1 group:\n1. money back = reimbursed');
      assert.equal(await bob('/faq synonyms'), '1. money back = reimbursed');
      const hits = await faq.search('can I have my money back for the kettle', 1);
      assert.equal(hits[0]?.entry.id, entry.id);
      assert.equal(await admin('/faq synonyms remove 2'), 'Could not do that: there is no synonym group 2; the list has 1');
      assert.equal(await admin('/faq synonyms remove 1'), 'Removed the synonyms money back = reimbursed.');
      await faq.remove(entry.id);
    });
  });

  describe('faq synonyms and overlaps in files', () => {
    /** Four entries that all mention the account, so that "account" cannot be a synonym here. */
    const ACCOUNT_FAQ = [
      { question: 'How do I delete my account?', answer: 'Under Settings, then Delete.' },
      { question: 'How do I rename my account?', answer: 'Under Settings, then Name.' },
      { question: 'Can I share my account?', answer: 'No, one person per account.' },
      { question: 'Do you offer refunds?', answer: 'Within 30 days, to the account you paid from.' },
    ];

    it('imports the synonym list with the entries, in one write, and says so; preview changes nothing', async () => {
      await fixture.faq.setSynonyms([['sign in', 'log in']], 'replace');
      const version = await fixture.faq.version();
      const file = attachment('faq.json', JSON.stringify({ synonyms: [['money back', 'refund'], ['bill', 'invoice']], entries: ACCOUNT_FAQ }));
      const preview = await admin('/faq import preview', [file]);
      assert.match(preview, /^Preview of faq\.json \(merge; nothing changed yet\):\n\+ 4 new\n/);
      assert.ok(preview.split('\n').includes('* 2 synonym groups from the file replace the synonym list (1 synonym group before)'), preview);
      assert.deepEqual(await fixture.faq.synonyms(), [['sign in', 'log in']]);
      assert.equal(await fixture.faq.version(), version);

      const imported = await admin('/faq import', [file]);
      assert.match(imported, /^Imported faq\.json \(merge\):\n\+ 4 new\n[^]*\n\* 2 synonym groups from the file replace the synonym list \(1 synonym group before\)$/);
      assert.deepEqual(await fixture.faq.synonyms(), [['money back', 'refund'], ['bill', 'invoice']]);
      assert.equal(await fixture.faq.version(), version + 1, 'entries and synonyms in one write');
      const refunds = await idOf('Do you offer refunds?');
      assert.equal((await fixture.faq.search('can I have my money back', 1))[0]?.entry.id, refunds);

      // The same file again changes nothing, and a Markdown file carries a list too.
      assert.equal(await admin('/faq import', [file]), 'Imported faq.json (merge):\n+ 0 new\n~ 0 changed\n= 4 unchanged\n(2 not in the file, kept)\n* 2 synonym groups from the file replace the synonym list (2 synonym groups before)');
      assert.equal(await fixture.faq.version(), version + 1);
      const markdown = attachment('faq.md', '<!-- faq-synonyms: [["money back", "refund", "repayment"]] -->\n\n## Do you offer refunds?\n\nWithin 30 days, to the account you paid from.\n');
      assert.match(await admin('/faq import', [markdown]), /\n\* 1 synonym group from the file replace the synonym list \(2 synonym groups before\)$/);
      assert.deepEqual(await fixture.faq.synonyms(), [['money back', 'refund', 'repayment']]);
    });

    it('refuses a synonym list that would match most entries, and the whole import with it: nothing changes', async () => {
      await fixture.faq.setSynonyms([['sign in', 'log in']], 'replace');
      const before = await fixture.faq.export('json');
      const version = await fixture.faq.version();
      const file = attachment('faq.yaml', [
        'synonyms:',
        '  - [money back, refund]',
        '  - [account, profile]',
        'entries:',
        ...ACCOUNT_FAQ.flatMap(({ question, answer }) => [`  - question: ${question}`, `    answer: ${answer}`]),
        '',
      ].join('\n'));
      // Checked against the entries the import would leave: the file's and the FAQ's two in merge, the file's alone in replace.
      for (const [command, entries] of [['/faq import preview', 6], ['/faq import', 6], ['/faq import replace', 4]] as const) {
        assert.equal(
          await admin(command, [file]),
          `Could not do that: the synonym group "account, profile" matches 4 of the FAQ's ${entries} entries; words that common cannot tell entries apart, so they would map every question to every answer`,
          command,
        );
      }
      assert.equal(await fixture.faq.export('json'), before);
      assert.equal(await fixture.faq.version(), version);
      // A list the file gets wrong on its own is refused naming the line, with nothing changed either.
      const bad = attachment('faq.jsonl', '{"question": "Refund?", "answer": "Yes."}\n{"synonyms": [["refund"]]}\n');
      assert.equal(await admin('/faq import', [bad]), 'Could not do that: line 2: the synonym group "refund" has one phrase; a group needs two or more');
      assert.equal(await fixture.faq.export('json'), before);
    });

    it('a CSV import leaves the synonym list as it is, in merge and in replace', async () => {
      await fixture.faq.setSynonyms([['money back', 'refund']], 'replace');
      const file = attachment('faq.csv', 'question,answer\nDo you offer refunds?,Within 30 days.\n');
      for (const mode of ['merge', 'replace']) {
        assert.doesNotMatch(await admin(`/faq import ${mode}`, [file]), /synonym/);
        assert.deepEqual(await fixture.faq.synonyms(), [['money back', 'refund']], mode);
      }
    });

    it('exports the synonym list in every format that holds one, and says CSV cannot; the export imports back', async () => {
      await fixture.faq.setSynonyms([['money back', 'refund'], ['bill', 'invoice']], 'replace');
      const expected = await faqEntries(fixture.faq);
      for (const format of FAQ_FORMATS) {
        const [file] = (await askForFiles(fixture.engine, localMessage('bob', `/faq export ${format}`))).files;
        const { records, synonyms } = parseFaqDocument(file.data, format);
        assert.deepEqual(records.map((record) => [record.question, record.answer]), expected, format);
        if (format === 'csv') {
          assert.equal(file.title, 'The FAQ (2 entries) as csv. CSV cannot hold its 2 synonym groups: export as json, jsonl, yaml, markdown to keep them.');
          assert.equal(synonyms, undefined);
        } else {
          assert.equal(file.title, `The FAQ (2 entries) as ${format}.`);
          assert.deepEqual(synonyms, [['money back', 'refund'], ['bill', 'invoice']], format);
        }
      }
      const [markdown] = (await askForFiles(fixture.engine, localMessage('bob', '/faq export markdown'))).files;
      await fixture.faq.setSynonyms([], 'replace');
      assert.match(await admin('/faq import replace', [attachment('faq.md', markdown.data)]), /\n\* 2 synonym groups from the file replace the synonym list \(0 synonym groups before\)$/);
      assert.deepEqual(await fixture.faq.synonyms(), [['money back', 'refund'], ['bill', 'invoice']]);
    });

    it('reports entries that ask nearly the same thing with different answers, at import and on add, without refusing them', async () => {
      const file = attachment('faq.csv', 'question,answer\nHow can I reset my password?,Write to support.\nHow do I cancel?,Under Plan.\nHow can I cancel?,Under Plan.\n');
      const preview = await admin('/faq import preview', [file]);
      const reset = await idOf('How do I reset my password?');
      const warning = '! these entries ask nearly the same thing with different answers:';
      assert.match(preview, new RegExp(`\\n${warning}\\n  ${reset} "How do I reset my password\\?" / q\\d+ "How can I reset my password\\?"$`));
      assert.equal((await fixture.faq.entries()).length, 2, 'the preview changed nothing');

      const imported = await admin('/faq import', [file]);
      const resetAgain = await idOf('How can I reset my password?');
      // The two ways of asking to cancel share one answer: no overlap to report.
      assert.ok(imported.endsWith(`\n${warning}\n  ${reset} "How do I reset my password?" / ${resetAgain} "How can I reset my password?"`), imported);
      assert.equal((await fixture.faq.entries()).length, 5, 'the import went ahead');

      const added = await admin('/faq add "Where can I find the invoices?" "Ask the office."');
      const invoices = await idOf('Where are the invoices?');
      const find = await idOf('Where can I find the invoices?');
      assert.equal(added, `Added ${find}: "Where can I find the invoices?"\n${warning}\n  ${invoices} "Where are the invoices?" / ${find} "Where can I find the invoices?"`);
      assert.match(await admin('/faq add "Is there an API?" "Yes."'), /^Added q\d+: "Is there an API\?"$/);
    });
  });

  describe('model', () => {
    it('reports the live model, lists the versions, and rolls back with /model use', async () => {
      const { registry, model } = fixture.app.services;
      const older = model.version as string;
      const newer = await fixture.publishVersion();
      assert.match(await bob('/model status'), new RegExp(`^Live model ${older} on CPU: [\\d,]+ parameters, 2 layers, context 128\\.$`));
      const versions = (await bob('/model versions')).split('\n');
      assert.ok(versions.includes(`* ${older}: base model`), versions.join('\n'));
      assert.ok(versions.includes(`  ${newer}: base model`), versions.join('\n'));

      assert.equal(await admin(`/model use ${newer}`), `Version ${newer} is live.`);
      assert.equal(model.version, newer);
      assert.equal(await registry.currentVersion(), newer);
      assert.match(await bob('/model status'), new RegExp(`^Live model ${newer} on CPU`));

      assert.equal(await admin(`/model use ${older}`), `Version ${older} is live.`);
      assert.equal(model.version, older);
      assert.equal(await registry.currentVersion(), older);
      assert.ok((await bob('/model versions')).split('\n').includes(`* ${older}: base model`));
    });

    it('refuses a version that does not exist with a clear reply, and keeps the live one', async () => {
      const { registry, model } = fixture.app.services;
      const live = model.version;
      assert.match(await admin('/model use v99'), /^Could not do that: there is no version v99; the versions are v1, /);
      assert.match(await admin('/model use 1'), /^Could not do that: there is no version 1; the versions are v1, /);
      assert.match(await admin('/model use'), /^Give one version, e.g. v2 \(see \/model versions\)\.\nUsage: \/model use <version>$/);
      assert.equal(model.version, live);
      assert.equal(await registry.currentVersion(), live);
    });

    it("ends a finished fine-tune's reply with its loss curve: the PNG the trainer wrote beside the new version", async () => {
      const { text, files } = await askForFiles(fixture.engine, localMessage('admin', '/model finetune', { platformAdmin: true }));
      const version = /Version (v\d+) is kept/.exec(text)?.[1];
      assert.ok(version, text);
      assert.deepEqual(files.map((file) => [file.name, file.contentType]), [[`loss-curve-${version}.png`, 'image/png']]);
      assert.deepEqual(new Uint8Array(files[0].data.subarray(0, 8)), PNG_SIGNATURE);
      assert.deepEqual(new Uint8Array(files[0].data), new Uint8Array(await readFile(join(fixture.app.services.registry.dirOf(version), 'loss-curve.png'))));
    });

    it('says so when /model cancel finds nothing running', async () => {
      assert.equal(await admin('/model cancel'), 'No fine-tune is running.');
    });
  });
});
