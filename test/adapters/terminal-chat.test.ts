import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { runTerminalChat } from '../../src/adapters/local/terminal-chat.js';
import { SAMPLE_FAQ } from '../../src/core/app.js';
import { parseFaqFile } from '../../src/core/faq/formats.js';
import type { FaqRecord } from '../../src/core/faq/entry.js';
import type { IncomingMessage } from '../../src/core/message.js';
import { createScratchApp, type ScratchApp } from '../helpers/local-app.js';

function localMessage(text: string): IncomingMessage {
  return { platform: 'local', scope: { workspace: 'local', channel: 'test' }, user: { id: 'test', displayName: 'test' }, text, attachments: [], platformAdmin: true };
}

/** The engine's reply to a message sent directly, to compare the terminal's output with. */
async function reply(scratch: ScratchApp, text: string): Promise<string> {
  let whole = '';
  for await (const piece of scratch.app.engine.handle(localMessage(text))) whole += piece;
  return whole;
}

/** Everything the chat writes, once it has read its input to the end. */
async function chat(scratch: ScratchApp, writeInput: (input: PassThrough) => void, keyboard = false): Promise<string> {
  const input = Object.assign(new PassThrough(), { isTTY: keyboard });
  const output = new PassThrough();
  let written = '';
  output.on('data', (chunk: Buffer) => (written += chunk.toString('utf8')));
  const finished = runTerminalChat(scratch.app.engine, input, output);
  writeInput(input);
  await finished;
  output.end();
  await once(output, 'end');
  return written;
}

describe('terminal chat', () => {
  let scratch: ScratchApp;
  let records: FaqRecord[];

  before(async () => {
    scratch = await createScratchApp();
    records = parseFaqFile(await readFile(SAMPLE_FAQ), 'markdown');
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

  it('writes nothing and returns at once for empty input', async () => {
    assert.equal(await chat(scratch, (input) => input.end()), '');
  });
});
