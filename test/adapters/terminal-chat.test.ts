import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { TerminalChat, type TerminalChatOptions } from '../../src/adapters/local/terminal-chat.js';
import type { ChatEngine } from '../../src/core/conversation/adapter.js';
import { SAMPLE_FAQ } from '../../src/core/app.js';
import { parseFaqDocument } from '../../src/core/faq/formats.js';
import type { FaqRecord } from '../../src/core/faq/entry.js';
import type { IncomingMessage } from '../../src/core/conversation/message.js';
import { collectReply } from '../../src/core/conversation/reply.js';
import { createScratchApp, type ScratchApp } from '../helpers/local-app.js';
import { exportedEntries, faqEntries } from '../helpers/reply-files.js';

function localMessage(text: string): IncomingMessage {
  return { platform: 'local', scope: { workspace: 'local', channel: 'test' }, user: { id: 'test', displayName: 'test' }, text, attachments: [], platformAdmin: true };
}

/** The engine's reply to a message sent directly, to compare the terminal's output with. */
async function reply(scratch: ScratchApp, text: string): Promise<string> {
  return (await collectReply(scratch.app.engine.handle(localMessage(text)))).text;
}

/** Everything the chat writes, once it has read its input to the end. */
async function chat(scratch: ScratchApp, writeInput: (input: PassThrough) => void, keyboard = false, options: TerminalChatOptions = {}): Promise<string> {
  const input = Object.assign(new PassThrough(), { isTTY: keyboard });
  const output = new PassThrough();
  let written = '';
  output.on('data', (chunk: Buffer) => (written += chunk.toString('utf8')));
  const terminal = new TerminalChat(scratch.app.engine, input, output, options);
  await terminal.start();
  writeInput(input);
  await terminal.finished();
  output.end();
  await once(output, 'end');
  return written;
}

describe('terminal chat', () => {
  let scratch: ScratchApp;
  let records: FaqRecord[];

  before(async () => {
    scratch = await createScratchApp();
    records = parseFaqDocument(await readFile(SAMPLE_FAQ), 'markdown').records;
    await scratch.app.services.faqFor(localMessage('')).applyImport(records, 'merge');
  });

  after(async () => {
    await scratch?.close();
  });

  it('answers piped lines in order, one reply a line, skipping blank lines', async () => {
    const written = await chat(scratch, (input) => {
      // A line split across writes is still one message.
      input.write('What is tune');
      input.write('bot?\n/faq list\n\n   \n/help\n');
      input.end();
    });
    const faqList = await reply(scratch, '/faq list');
    const help = await reply(scratch, '/help');
    const answer = records.find((record) => record.question === 'What is tunebot?')?.answer;
    assert.ok(answer);
    assert.equal(written, `${answer}\n${faqList}\n${help}\n`);
    assert.match(faqList, new RegExp(`^FAQ page 1/\\d+ \\(${records.length} entries\\):\\n1\\. What is tunebot\\?`));
    assert.match(help, /\/faq list/);
  });

  it('runs each line after the previous reply: an entry added on one line answers the next', async () => {
    const written = await chat(scratch, (input) => input.end('/faq add "Who makes the coffee?" "Whoever empties the pot."\nWho makes the coffee?\n'));
    const [added, answered] = written.split('\n');
    assert.match(added, /^Added \S+: "Who makes the coffee\?"$/);
    assert.equal(answered, 'Whoever empties the pot.');
  });

  it('prompts for each line when the input is a keyboard', async () => {
    const written = await chat(scratch, (input) => input.end('\nWhat is tunebot?\n'), true);
    const answer = records.find((record) => record.question === 'What is tunebot?')?.answer;
    assert.equal(written, `tunebot chat: ask a question, /help for commands, Ctrl-D to quit\n> > ${answer}\n> `);
  });

  it('saves an exported FAQ in the folder, beside files of the same name rather than over them, and prints where', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tunebot-terminal-'));
    try {
      await writeFile(join(dir, 'faq.json'), 'keep me');
      const expected = await faqEntries(scratch.app.services.faqFor(localMessage('')));
      const written = await chat(scratch, (input) => input.end('/faq export json\n/faq export json\n'), false, { saveDir: dir });
      const title = `The FAQ (${expected.length} entries) as json.`;
      const [first, second] = written.split('\n');
      const saved = /^(.*) Saved faq\.json \(([\d,]+) bytes\) as (.*)\.$/.exec(first);
      assert.deepEqual(saved && [saved[1], saved[3]], [title, join(dir, 'faq-1.json')], first);
      assert.ok(second.endsWith(`as ${join(dir, 'faq-2.json')}.`), second);
      assert.deepEqual((await readdir(dir)).sort(), ['faq-1.json', 'faq-2.json', 'faq.json']);
      assert.equal(await readFile(join(dir, 'faq.json'), 'utf8'), 'keep me');
      const bytes = new Uint8Array(await readFile(join(dir, 'faq-1.json')));
      assert.equal(bytes.length.toLocaleString('en'), saved?.[2]);
      assert.deepEqual(exportedEntries(bytes, 'json'), expected);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('says so when the file cannot be saved, and goes on with the next line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tunebot-terminal-'));
    try {
      const notAFolder = join(dir, 'not-a-folder');
      await writeFile(notAFolder, '');
      const written = await chat(scratch, (input) => input.end('/faq export csv\nWhat is tunebot?\n'), false, { saveDir: notAFolder });
      const [failed, answered] = written.split('\n');
      assert.match(failed, /^The FAQ \(\d+ entries\) as csv\. Could not save faq\.csv in /);
      assert.ok(failed.endsWith(`in ${notAFolder}: ENOTDIR: not a directory, open '${join(notAFolder, 'faq.csv')}'`), failed);
      assert.equal(answered, records.find((record) => record.question === 'What is tunebot?')?.answer);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('writes nothing and returns at once for empty input', async () => {
    assert.equal(await chat(scratch, (input) => input.end()), '');
  });
});

describe('terminal chat: stop', () => {
  it('reads no more lines, and resolves once the reply under way is written', async () => {
    let asked: () => void = () => {};
    const askedOnce = new Promise<void>((resolve) => {
      asked = resolve;
    });
    const questions: string[] = [];
    const engine: ChatEngine = {
      async *handle(message) {
        questions.push(message.text);
        asked();
        await new Promise((resolve) => setTimeout(resolve, 100));
        yield `answer to ${message.text}`;
      },
    };
    const input = new PassThrough();
    const output = new PassThrough();
    let written = '';
    output.on('data', (chunk: Buffer) => (written += chunk.toString('utf8')));
    const terminal = new TerminalChat(engine, input, output);
    await terminal.start();
    input.write('first\n');
    await askedOnce;
    await terminal.stop();
    assert.equal(written, 'answer to first\n', 'the reply under way was written before stop() resolved');
    input.end('second\n');
    await terminal.finished();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(questions, ['first']);
    assert.equal(written, 'answer to first\n');
  });
});
