import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemorySeenEvents } from '../../src/adapters/slack/seen-events.js';
import { fromSlackText, straightenQuotes, toSlackText } from '../../src/adapters/slack/slack-text.js';

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
