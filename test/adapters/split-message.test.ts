import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DISCORD_MESSAGES } from '../../src/adapters/discord/discord-adapter.js';
import { SLACK_MESSAGES } from '../../src/adapters/slack/slack-text.js';
import { type MessageFormat, MIN_MESSAGE_LIMIT, splitMessage } from '../../src/adapters/split-message.js';
import { SeededRandom } from '../../src/model/random.js';

const FENCE_LINE = /^\s*```/u;

const discord = (limit = DISCORD_MESSAGES.limit): MessageFormat => ({ ...DISCORD_MESSAGES, limit });
const slack = (limit = SLACK_MESSAGES.limit): MessageFormat => ({ ...SLACK_MESSAGES, limit });

/** Fence lines, as Discord reads fences. */
function fenceLines(text: string): number {
  return text.split('\n').filter((line) => FENCE_LINE.test(line)).length;
}

/** Whether ``` comes an even number of times, as Slack reads fences (each one toggles code). */
function fencesBalanced(text: string): boolean {
  return (text.match(/```/gu)?.length ?? 0) % 2 === 0;
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

function pick<T>(random: SeededRandom, items: readonly T[]): T {
  return items[Math.floor(random.next() * items.length)];
}

/** Prose with paragraphs, lines, sentences, and now and then a fenced code block (with a language or not) of any length. */
function proseAndCode(random: SeededRandom, length: number): string {
  let text = '';
  while (text.length < length) {
    const roll = random.next();
    if (roll < 0.08) {
      const lines = Array.from({ length: 1 + Math.floor(random.next() * 120) }, (_, i) => `  line${i} = value${i} + ${Math.floor(random.next() * 1000)}`);
      text += `\n${pick(random, ['```', '```ts', '```python'])}\n${lines.join('\n')}\n\`\`\`\n`;
    } else if (roll < 0.15) {
      text += '\n\n';
    } else if (roll < 0.25) {
      text += '\n';
    } else {
      text += `${pick(random, ['The', 'A', 'Your', 'Every'])} ${pick(random, ['bot', 'model', 'answer', 'server'])} ${pick(random, ['runs', 'waits', 'learns', 'replies'])}${pick(random, ['.', '!', '?', ',', ''])} `;
    }
  }
  return text;
}

/** Paragraphs of sentences, and bare code blocks of lines up to 70 characters, as Slack text. */
function paragraphsAndCode(random: SeededRandom): string {
  const vocabulary = ['the', 'bot', 'answers', 'questions', 'from', 'its', 'FAQ', 'entry', 'model', 'export', 'a', 'reply'];
  const blocks: string[] = [];
  const count = 1 + Math.floor(random.next() * 12);
  for (let b = 0; b < count; b += 1) {
    if (random.next() < 0.3) {
      const lines = Array.from({ length: 1 + Math.floor(random.next() * 40) }, (_, i) => `  line ${i} = ${'x'.repeat(Math.floor(random.next() * 60))}`);
      blocks.push(`\`\`\`\n${lines.join('\n')}\n\`\`\``);
    } else {
      const sentences = Array.from({ length: 1 + Math.floor(random.next() * 30) }, () => {
        const sentence = Array.from({ length: 3 + Math.floor(random.next() * 15) }, () => pick(random, vocabulary)).join(' ');
        return `${sentence[0].toUpperCase()}${sentence.slice(1)}.`;
      });
      blocks.push(sentences.join(random.next() < 0.2 ? '\n' : ' '));
    }
  }
  return blocks.join('\n\n');
}

describe('splitMessage', () => {
  it('leaves a short message whole, and sends nothing for blank text', () => {
    for (const format of [DISCORD_MESSAGES, SLACK_MESSAGES]) {
      assert.deepEqual(splitMessage('Hello there.', format), ['Hello there.']);
      assert.deepEqual(splitMessage(`  ${'x'.repeat(format.limit)}\n`, format), ['x'.repeat(format.limit)]);
      assert.deepEqual(splitMessage('', format), []);
      assert.deepEqual(splitMessage(' \n\t ', format), []);
      assert.deepEqual(splitMessage('\n  \n', format), []);
    }
  });

  it('cuts at a paragraph break before a line break, a line break before a sentence end, a sentence end before a space', () => {
    const format = discord(100);
    const paragraph = `${'a'.repeat(60)}\n\n${'b'.repeat(20)}\nc c. d ${'e'.repeat(40)}`;
    assert.deepEqual(splitMessage(paragraph, format)[0], 'a'.repeat(60));
    const line = `${'a'.repeat(60)}\n${'b'.repeat(20)}. c ${'e'.repeat(40)}`;
    assert.deepEqual(splitMessage(line, format)[0], 'a'.repeat(60));
    const sentence = `${'a'.repeat(60)}. ${'b'.repeat(20)} c ${'e'.repeat(40)}`;
    assert.deepEqual(splitMessage(sentence, format)[0], `${'a'.repeat(60)}.`);
    const space = `${'a'.repeat(60)} ${'b'.repeat(20)} ${'e'.repeat(40)}`;
    assert.deepEqual(splitMessage(space, format), [`${'a'.repeat(60)} ${'b'.repeat(20)}`, 'e'.repeat(40)]);
  });

  it('splits at the last line break that fits, after a sentence, else at a space, else anywhere', () => {
    const lines = Array.from({ length: 10 }, (_, i) => `${i}: ${'a'.repeat(20)}`);
    assert.deepEqual(splitMessage(lines.join('\n'), slack(100)), [lines.slice(0, 4).join('\n'), lines.slice(4, 8).join('\n'), lines.slice(8).join('\n')]);
    const sentences = 'One sentence here. Another sentence there! A third one? And the fourth sentence ends the paragraph.';
    assert.deepEqual(splitMessage(sentences, slack(60)), ['One sentence here. Another sentence there! A third one?', 'And the fourth sentence ends the paragraph.']);
    const numbered = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');
    for (const part of splitMessage(numbered, slack(50))) assert.match(part, /^word\d+( word\d+)*$/u);
    assert.deepEqual(splitMessage('y'.repeat(100), slack(40)), ['y'.repeat(40), 'y'.repeat(40), 'y'.repeat(20)]);
  });

  it('prefers a late weak boundary to an early strong one: a message is at least half full', () => {
    const text = `Intro.\n${'word '.repeat(50)}`;
    for (const format of [discord(100), slack(100)]) {
      const [first] = splitMessage(text, format);
      assert.ok(first.length >= 50, `the first message has ${first.length} characters`);
    }
  });

  it('moves a code block that fits in a message to the next message rather than cutting it', () => {
    const discordCode = `\`\`\`ts\n${Array.from({ length: 10 }, (_, i) => `const v${i} = ${i};`).join('\n')}\n\`\`\``;
    const messages = splitMessage(`Here is the code you asked for.\n${discordCode}\nThat is all.`, discord(200));
    assert.ok(messages.every((message) => message.length <= 200));
    assert.ok(messages.some((message) => message.includes(discordCode)), `the block stays whole: ${JSON.stringify(messages)}`);
    const slackCode = `\`\`\`\n${Array.from({ length: 6 }, (_, i) => `let x${i} = ${i};`).join('\n')}\n\`\`\``;
    assert.deepEqual(splitMessage(`Here is the code:\n${slackCode}\nThat is all.`, slack(slackCode.length + 5)), ['Here is the code:', slackCode, 'That is all.']);
  });

  it('cuts a code block longer than a message between lines, closing it and reopening it with its language on Discord', () => {
    const lines = Array.from({ length: 300 }, (_, i) => `print(${i})  # line ${i}`);
    const messages = splitMessage(`\`\`\`python\n${lines.join('\n')}\n\`\`\``, DISCORD_MESSAGES);
    assert.ok(messages.length >= 3);
    for (const message of messages) {
      assert.ok(message.length <= DISCORD_MESSAGES.limit);
      assert.ok(message.startsWith('```python\n'), message.slice(0, 20));
      assert.ok(message.endsWith('\n```'), message.slice(-20));
    }
    const code = messages.flatMap((message) => message.split('\n').slice(1, -1));
    assert.deepEqual(code, lines, 'every line arrives whole, once, in order');
  });

  it('cuts a code block longer than a message between lines, closing it and reopening it bare on Slack', () => {
    const lines = Array.from({ length: 40 }, (_, i) => `row ${String(i).padStart(2, '0')}`);
    const parts = splitMessage(`\`\`\`\n${lines.join('\n')}\n\`\`\``, slack(80));
    assert.ok(parts.length > 1);
    for (const part of parts) {
      assert.ok(part.length <= 80, `${part.length} > 80`);
      assert.ok(part.startsWith('```\n') && part.endsWith('\n```'), JSON.stringify(part));
    }
    assert.deepEqual(
      parts.flatMap((part) => part.slice(4, -4).split('\n')),
      lines,
    );
  });

  it('hard-cuts a word longer than a message, without splitting a surrogate pair, a run of backticks or (on Slack) an entity', () => {
    const emoji = '😀'.repeat(100);
    const messages = splitMessage(emoji, discord(51));
    assert.ok(messages.every((message) => message.length <= 51 && !/[\ud800-\udbff]$/u.test(message)));
    assert.equal(messages.join(''), emoji);
    assert.deepEqual(splitMessage('x'.repeat(250), discord(100)), ['x'.repeat(100), 'x'.repeat(100), 'x'.repeat(50)]);
    const entity = `${'a'.repeat(38)}&amp;${'b'.repeat(10)}`;
    assert.deepEqual(splitMessage(entity, slack(40)), ['a'.repeat(38), `&amp;${'b'.repeat(10)}`]);
    assert.deepEqual(splitMessage(entity, discord(40)), [`${'a'.repeat(38)}&a`, `mp;${'b'.repeat(10)}`], 'Discord text has no entities');
    const pair = `${'a'.repeat(39)}😀${'b'.repeat(5)}`;
    assert.deepEqual(splitMessage(pair, slack(40)), ['a'.repeat(39), `😀${'b'.repeat(5)}`]);
    const ticks = `${'a'.repeat(38)}\`\`\`code\`\`\``;
    assert.deepEqual(splitMessage(ticks, slack(40)), ['a'.repeat(38), '```code```']);
  });

  it('keeps every word and every code line, within the limit and with balanced fences, on random Discord replies', () => {
    const random = new SeededRandom(7);
    for (let round = 0; round < 200; round += 1) {
      const limit = [64, 200, 500, DISCORD_MESSAGES.limit][round % 4];
      const text = proseAndCode(random, Math.floor(random.next() * 4 * limit));
      const messages = splitMessage(text, discord(limit));
      for (const message of messages) {
        assert.ok(message.length > 0 && message.length <= limit, `a message of ${message.length} characters for limit ${limit}`);
        assert.equal(message, message.trim());
        assert.equal(fenceLines(message) % 2, 0, `unbalanced fences in ${JSON.stringify(message)}`);
      }
      assert.deepEqual(words(messages.join('\n')), words(text), `round ${round}: words lost, broken or added`);
    }
  });

  it('keeps every part under the limit, balanced, in order, on random Slack replies', () => {
    const random = new SeededRandom(7);
    for (let round = 0; round < 200; round += 1) {
      const text = paragraphsAndCode(random);
      const limit = 200 + Math.floor(random.next() * 1500);
      const parts = splitMessage(text, slack(limit));
      for (const part of parts) {
        assert.ok(part.length <= limit, `round ${round}: a part of ${part.length} > ${limit}`);
        assert.ok(part.trim().length > 0);
        assert.ok(fencesBalanced(part), `round ${round}: unbalanced fences in ${JSON.stringify(part.slice(0, 80))}`);
      }
      // Nothing is lost or reordered: only whitespace at the cuts and the fences added there differ.
      const squash = (value: string) => value.replace(/```/gu, '').replace(/\s+/gu, '');
      assert.equal(squash(parts.join('')), squash(text), `round ${round}`);
    }
  });

  it('cuts a growing text the same way each time, so that streamed messages stay put', () => {
    const random = new SeededRandom(11);
    // Replies by paragraphs and code blocks, and a soup with fences, entities and emoji mid-line.
    const soupWords = ['the', 'bot', 'FAQ.', 'Hello!', '```', 'a?', '\n', '\n\n', '&amp;', '😀', 'x'];
    const soup = () => Array.from({ length: 600 }, () => pick(random, soupWords) + (random.next() < 0.8 ? ' ' : '')).join('');
    const cases: [string, MessageFormat][] = [
      [paragraphsAndCode(random) + paragraphsAndCode(random), slack(300)],
      [soup(), slack(60)],
      [soup(), slack(140)],
      [proseAndCode(random, 3000), discord(300)],
    ];
    for (const [text, format] of cases) {
      const final = splitMessage(text, format);
      let count = 0;
      for (let length = 1; length <= text.length; length += 7) {
        const parts = splitMessage(text.slice(0, length), format);
        assert.ok(parts.length >= count, `at length ${length}, the parts went from ${count} to ${parts.length}`);
        count = parts.length;
        // Every part but the last one (still growing) is already final.
        for (let i = 0; i < parts.length - 1; i += 1) assert.equal(parts[i], final[i], `at length ${length}, part ${i}`);
        for (const part of parts) assert.ok(part.length <= format.limit);
      }
    }
  });

  it('refuses a limit too small to hold a fenced part', () => {
    assert.throws(() => splitMessage('text', discord(10)), new RegExp(`at least ${MIN_MESSAGE_LIMIT}`, 'u'));
    assert.throws(() => splitMessage('text', slack(MIN_MESSAGE_LIMIT - 1)), /at least 40/u);
  });
});
