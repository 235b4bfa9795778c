import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemorySeenEvents } from '../../src/adapters/slack/seen-events.js';
import { fromSlackText, straightenQuotes, toSlackText } from '../../src/adapters/slack/slack-text.js';
import { SLACK_SECTION_LIMIT, splitSlackMessage } from '../../src/adapters/slack/split-message.js';

/** Whether `text`, read line by line, ends outside any ``` block (Slack toggles on each ```). */
function fencesBalanced(text: string): boolean {
  return (text.match(/```/gu)?.length ?? 0) % 2 === 0;
}

/** A deterministic sequence of numbers in [0, 1), for generated texts. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function randomReply(random: () => number): string {
  const words = ['the', 'bot', 'answers', 'questions', 'from', 'its', 'FAQ', 'entry', 'model', 'export', 'a', 'reply'];
  const blocks: string[] = [];
  const count = 1 + Math.floor(random() * 12);
  for (let b = 0; b < count; b += 1) {
    if (random() < 0.3) {
      const lines = Array.from({ length: 1 + Math.floor(random() * 40) }, (_, i) => `  line ${i} = ${'x'.repeat(Math.floor(random() * 60))}`);
      blocks.push(`\`\`\`\n${lines.join('\n')}\n\`\`\``);
    } else {
      const sentences = Array.from({ length: 1 + Math.floor(random() * 30) }, () => {
        const sentence = Array.from({ length: 3 + Math.floor(random() * 15) }, () => words[Math.floor(random() * words.length)]).join(' ');
        return `${sentence[0].toUpperCase()}${sentence.slice(1)}.`;
      });
      blocks.push(sentences.join(random() < 0.2 ? '\n' : ' '));
    }
  }
  return blocks.join('\n\n');
}

describe('splitSlackMessage', () => {
  it('keeps a reply under the limit as one message, and gives nothing for an empty one', () => {
    assert.deepEqual(splitSlackMessage('Hello there.'), ['Hello there.']);
    assert.deepEqual(splitSlackMessage('x'.repeat(SLACK_SECTION_LIMIT)), ['x'.repeat(SLACK_SECTION_LIMIT)]);
    assert.deepEqual(splitSlackMessage(''), []);
    assert.deepEqual(splitSlackMessage('\n  \n'), []);
  });

  it('splits at line breaks when the lines fit', () => {
    const lines = Array.from({ length: 10 }, (_, i) => `${i}: ${'a'.repeat(20)}`);
    const parts = splitSlackMessage(lines.join('\n'), 100);
    assert.deepEqual(parts, [lines.slice(0, 4).join('\n'), lines.slice(4, 8).join('\n'), lines.slice(8).join('\n')]);
  });

  it('splits one long paragraph after a sentence, else at a space, else anywhere', () => {
    const sentences = 'One sentence here. Another sentence there! A third one? And the fourth sentence ends the paragraph.';
    const parts = splitSlackMessage(sentences, 60);
    assert.deepEqual(parts, ['One sentence here. Another sentence there! A third one?', 'And the fourth sentence ends the paragraph.']);
    const words = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');
    for (const part of splitSlackMessage(words, 50)) assert.match(part, /^word\d+( word\d+)*$/u);
    assert.deepEqual(splitSlackMessage('y'.repeat(100), 40), ['y'.repeat(40), 'y'.repeat(40), 'y'.repeat(20)]);
  });

  it('never cuts inside a code block that fits in a message', () => {
    const code = `\`\`\`\n${Array.from({ length: 6 }, (_, i) => `let x${i} = ${i};`).join('\n')}\n\`\`\``;
    const text = `Here is the code:\n${code}\nThat is all.`;
    const parts = splitSlackMessage(text, code.length + 5);
    assert.deepEqual(parts, ['Here is the code:', code, 'That is all.']);
  });

  it('closes and reopens a code block that is longer than a message by itself', () => {
    const lines = Array.from({ length: 40 }, (_, i) => `row ${String(i).padStart(2, '0')}`);
    const text = `\`\`\`\n${lines.join('\n')}\n\`\`\``;
    const parts = splitSlackMessage(text, 80);
    assert.ok(parts.length > 1);
    for (const part of parts) {
      assert.ok(part.length <= 80, `${part.length} > 80`);
      assert.ok(part.startsWith('```\n') && part.endsWith('\n```'), JSON.stringify(part));
    }
    const rows = parts.flatMap((part) => part.slice(4, -4).split('\n'));
    assert.deepEqual(rows, lines);
  });

  it('does not cut an escaped entity or a surrogate pair when it must cut a word', () => {
    const entities = `${'a'.repeat(38)}&amp;${'b'.repeat(10)}`;
    assert.deepEqual(splitSlackMessage(entities, 40), [`${'a'.repeat(38)}`, `&amp;${'b'.repeat(10)}`]);
    const emoji = `${'a'.repeat(39)}😀${'b'.repeat(5)}`;
    const parts = splitSlackMessage(emoji, 40);
    assert.equal(parts.join(''), emoji);
    assert.equal(parts[0], 'a'.repeat(39));
  });

  it('keeps every part under the limit, balanced, in order, for many generated replies', () => {
    const random = lcg(7);
    for (let round = 0; round < 200; round += 1) {
      const text = randomReply(random);
      const max = 200 + Math.floor(random() * 1500);
      const parts = splitSlackMessage(text, max);
      for (const part of parts) {
        assert.ok(part.length <= max, `round ${round}: a part of ${part.length} > ${max}`);
        assert.ok(part.trim().length > 0);
        assert.ok(fencesBalanced(part), `round ${round}: unbalanced fences in ${JSON.stringify(part.slice(0, 80))}`);
      }
      // Nothing is lost or reordered: only whitespace at the cuts and the fences added there differ.
      const squash = (value: string) => value.replace(/```/gu, '').replace(/\s+/gu, '');
      assert.equal(squash(parts.join('')), squash(text), `round ${round}`);
    }
  });

  it('cuts a growing text the same way each time, so that streamed parts stay put', () => {
    const random = lcg(11);
    // Replies by paragraphs and code blocks, and a soup with fences, entities and emoji mid-line.
    const soupWords = ['the', 'bot', 'FAQ.', 'Hello!', '```', 'a?', '\n', '\n\n', '&amp;', '😀', 'x'];
    const soup = () => Array.from({ length: 600 }, () => soupWords[Math.floor(random() * soupWords.length)] + (random() < 0.8 ? ' ' : '')).join('');
    for (const [text, max] of [[randomReply(random) + randomReply(random), 300], [soup(), 60], [soup(), 140]] as const) {
      const final = splitSlackMessage(text, max);
      let count = 0;
      for (let length = 1; length <= text.length; length += 7) {
        const parts = splitSlackMessage(text.slice(0, length), max);
        assert.ok(parts.length >= count, `at length ${length}, the parts went from ${count} to ${parts.length}`);
        count = parts.length;
        // Every part but the last one (still growing) is already final.
        for (let i = 0; i < parts.length - 1; i += 1) assert.equal(parts[i], final[i], `at length ${length}, part ${i}`);
        for (const part of parts) assert.ok(part.length <= max);
      }
    }
  });

  it('refuses a limit too small to hold a fenced part', () => {
    assert.throws(() => splitSlackMessage('text', 10), /at least 40/);
  });
});

describe('Slack text', () => {
  it("reads a mention's text: the bot's mention gone, links and entities plain, other users kept", () => {
    assert.equal(fromSlackText('<@UBOT> what is &lt;b&gt; &amp; <https://example.com|the site>?', 'UBOT'), 'what is <b> & the site?');
    assert.equal(fromSlackText('<@UBOT|tunebot> /forget <@U123>', 'UBOT'), '/forget <@U123>');
    assert.equal(fromSlackText('/forget <@U123|max>', 'UBOT'), '/forget <@U123>');
    assert.equal(fromSlackText('see <https://x.org> in <#C1|general>', null), 'see https://x.org in #general');
  });

  it('writes a reply as Slack text: escaped, fences without a language name', () => {
    assert.equal(toSlackText('a < b & c > d'), 'a &lt; b &amp; c &gt; d');
    assert.equal(toSlackText('```json\n{"a": 1}\n```'), '```\n{"a": 1}\n```');
  });

  it("renders an FAQ answer's Markdown as Slack mrkdwn: bold, italics, links, lists, headings", () => {
    const answer = [
      '## Resetting a password',
      'Open **Settings** and choose __Security__, then *Reset*. See [the guide](https://example.com/help?a=1&b=2) or <https://example.com>.',
      '- first, sign in',
      '  * then open the _account_ page',
      '- ~~old way~~ gone',
      '+ 2 new (a summary line, not a list)',
      '1. numbered items stay as they are',
    ].join('\n');
    assert.equal(
      toSlackText(answer),
      [
        '*Resetting a password*',
        'Open *Settings* and choose *Security*, then _Reset_. See <https://example.com/help?a=1&amp;b=2|the guide> or <https://example.com>.',
        '• first, sign in',
        '  • then open the _account_ page',
        '• ~old way~ gone',
        '+ 2 new (a summary line, not a list)',
        '1. numbered items stay as they are',
      ].join('\n'),
    );
  });

  it('nests marks, and leaves what only looks like a mark as written', () => {
    assert.equal(toSlackText('**see [the *new* docs](https://x.org)**'), '*see <https://x.org|the _new_ docs>*');
    assert.equal(toSlackText('## A **bold** title ##'), '*A bold title*');
    assert.equal(toSlackText('2*3*4 = 24, snake_case_name, a * b * c, x__y__z'), '2*3*4 = 24, snake_case_name, a * b * c, x__y__z');
    assert.equal(toSlackText('\\*not italic\\* and a \\[bracket\\]'), '*not italic* and a [bracket]');
    assert.equal(toSlackText('**unclosed bold, as a reply streams'), '**unclosed bold, as a reply streams');
  });

  it('keeps code as written, escaped only: inline spans and fenced blocks', () => {
    assert.equal(toSlackText('Run `a **b** <c>` now'), 'Run `a **b** &lt;c&gt;` now');
    assert.equal(toSlackText('```ts\n**not bold** - [x](y)\n# not a heading\n```\n**bold**'), '```\n**not bold** - [x](y)\n# not a heading\n```\n*bold*');
  });

  it('straightens the curly quotes phones type', () => {
    assert.equal(straightenQuotes('faq add “Why?” ‘Because’'), `faq add "Why?" 'Because'`);
  });
});

describe('MemorySeenEvents', () => {
  it('claims a key once within the time-to-live, and again after it', async () => {
    let now = 1_000;
    const seen = new MemorySeenEvents(60_000, () => now);
    assert.equal(await seen.claim('Ev1'), true);
    assert.equal(await seen.claim('Ev1'), false);
    assert.equal(await seen.claim('Ev2'), true);
    now += 60_000;
    assert.equal(await seen.claim('Ev1'), true);
    assert.equal(seen.size, 1, 'expired keys are dropped');
  });

  it('keeps at most maxKeys keys under a million distinct events within the time-to-live', async () => {
    let now = 0;
    const seen = new MemorySeenEvents(60 * 60_000, () => now, 50_000);
    for (let i = 0; i < 1_000_000; i++) {
      now = i;
      assert.equal(await seen.claim(`Ev${i}`), true);
    }
    assert.equal(seen.size, 50_000);
    assert.equal(await seen.claim('Ev999999'), false, 'the newest keys are still held');
    assert.equal(await seen.claim('Ev0'), true, 'the oldest went to make room');
  });
});
