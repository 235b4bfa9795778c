import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DISCORD_MESSAGE_LIMIT, splitDiscordMessage } from '../../src/adapters/discord/split-message.js';
import { SeededRandom } from '../../src/model/random.js';

const FENCE_LINE = /^\s*```/u;

function fenceLines(text: string): number {
  return text.split('\n').filter((line) => FENCE_LINE.test(line)).length;
}

/** The text's words, code included, without fence lines: what a reader gets whatever the cuts. */
function words(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => !FENCE_LINE.test(line))
    .join(' ')
    .split(/\s+/u)
    .filter(Boolean);
}

/** Prose with paragraphs, lines, sentences, and now and then a fenced code block of any length. */
function randomReply(random: SeededRandom, length: number): string {
  const pick = <T>(items: readonly T[]) => items[Math.floor(random.next() * items.length)];
  let text = '';
  while (text.length < length) {
    const roll = random.next();
    if (roll < 0.08) {
      const lines = Array.from({ length: 1 + Math.floor(random.next() * 120) }, (_, i) => `  line${i} = value${i} + ${Math.floor(random.next() * 1000)}`);
      text += `\n${pick(['```', '```ts', '```python'])}\n${lines.join('\n')}\n\`\`\`\n`;
    } else if (roll < 0.15) {
      text += '\n\n';
    } else if (roll < 0.25) {
      text += '\n';
    } else {
      text += `${pick(['The', 'A', 'Your', 'Every'])} ${pick(['bot', 'model', 'answer', 'server'])} ${pick(['runs', 'waits', 'learns', 'replies'])}${pick(['.', '!', '?', ',', ''])} `;
    }
  }
  return text;
}

describe('splitDiscordMessage', () => {
  it('leaves a short message whole, and sends nothing for blank text', () => {
    assert.deepEqual(splitDiscordMessage('Hello there.'), ['Hello there.']);
    assert.deepEqual(splitDiscordMessage(`  ${'x'.repeat(DISCORD_MESSAGE_LIMIT)}\n`), ['x'.repeat(DISCORD_MESSAGE_LIMIT)]);
    assert.deepEqual(splitDiscordMessage(''), []);
    assert.deepEqual(splitDiscordMessage(' \n\t '), []);
  });

  it('cuts at a paragraph break before a line break, a line break before a sentence end, a sentence end before a space', () => {
    const limit = 100;
    const paragraph = `${'a'.repeat(60)}\n\n${'b'.repeat(20)}\nc c. d ${'e'.repeat(40)}`;
    assert.deepEqual(splitDiscordMessage(paragraph, limit)[0], 'a'.repeat(60));
    const line = `${'a'.repeat(60)}\n${'b'.repeat(20)}. c ${'e'.repeat(40)}`;
    assert.deepEqual(splitDiscordMessage(line, limit)[0], 'a'.repeat(60));
    const sentence = `${'a'.repeat(60)}. ${'b'.repeat(20)} c ${'e'.repeat(40)}`;
    assert.deepEqual(splitDiscordMessage(sentence, limit)[0], `${'a'.repeat(60)}.`);
    const space = `${'a'.repeat(60)} ${'b'.repeat(20)} ${'e'.repeat(40)}`;
    assert.deepEqual(splitDiscordMessage(space, limit), [`${'a'.repeat(60)} ${'b'.repeat(20)}`, 'e'.repeat(40)]);
  });

  it('prefers a late weak boundary to an early strong one: a message is at least half full', () => {
    const text = `Intro.\n${'word '.repeat(50)}`;
    const [first] = splitDiscordMessage(text, 100);
    assert.ok(first.length >= 50, `the first message has ${first.length} characters`);
  });

  it('moves a code block that fits in a message to the next message rather than cutting it', () => {
    const code = `\`\`\`ts\n${Array.from({ length: 10 }, (_, i) => `const v${i} = ${i};`).join('\n')}\n\`\`\``;
    const text = `Here is the code you asked for.\n${code}\nThat is all.`;
    const messages = splitDiscordMessage(text, 200);
    assert.ok(messages.every((message) => message.length <= 200));
    assert.ok(messages.some((message) => message.includes(code)), `the block stays whole: ${JSON.stringify(messages)}`);
  });

  it('cuts a code block longer than a message between lines, closing and reopening it with its language', () => {
    const lines = Array.from({ length: 300 }, (_, i) => `print(${i})  # line ${i}`);
    const text = `\`\`\`python\n${lines.join('\n')}\n\`\`\``;
    const messages = splitDiscordMessage(text);
    assert.ok(messages.length >= 3);
    for (const message of messages) {
      assert.ok(message.length <= DISCORD_MESSAGE_LIMIT);
      assert.ok(message.startsWith('```python\n'), message.slice(0, 20));
      assert.ok(message.endsWith('\n```'), message.slice(-20));
    }
    const code = messages.flatMap((message) => message.split('\n').slice(1, -1));
    assert.deepEqual(code, lines, 'every line arrives whole, once, in order');
  });

  it('hard-cuts a word longer than a message, without splitting a surrogate pair', () => {
    const emoji = '😀'.repeat(100);
    const messages = splitDiscordMessage(emoji, 51);
    assert.ok(messages.every((message) => message.length <= 51 && !/[\ud800-\udbff]$/u.test(message)));
    assert.equal(messages.join(''), emoji);
    assert.deepEqual(splitDiscordMessage('x'.repeat(250), 100), ['x'.repeat(100), 'x'.repeat(100), 'x'.repeat(50)]);
  });

  it('keeps every word and every code line, within the limit and with balanced fences, on random replies', () => {
    const random = new SeededRandom(7);
    for (let round = 0; round < 200; round += 1) {
      const limit = [64, 200, 500, DISCORD_MESSAGE_LIMIT][round % 4];
      const text = randomReply(random, Math.floor(random.next() * 4 * limit));
      const messages = splitDiscordMessage(text, limit);
      for (const message of messages) {
        assert.ok(message.length > 0 && message.length <= limit, `a message of ${message.length} characters for limit ${limit}`);
        assert.equal(message, message.trim());
        assert.equal(fenceLines(message) % 2, 0, `unbalanced fences in ${JSON.stringify(message)}`);
      }
      assert.deepEqual(words(messages.join('\n')), words(text), `round ${round}: words lost, broken or added`);
    }
  });

  it('refuses a limit too small to hold a code fence', () => {
    assert.throws(() => splitDiscordMessage('text', 10), /at least 32/u);
  });
});
