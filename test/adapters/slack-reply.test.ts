import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RESPONSE_URL_USES, SlashReply, StreamedReply } from '../../src/adapters/slack/reply-stream.js';
import { SLACK_SECTION_LIMIT } from '../../src/adapters/slack/split-message.js';

/** A conversation that keeps what was posted and updated, with the time of each call. */
function recordingConversation() {
  const calls: { op: 'post' | 'update'; ts: string; text: string; at: number }[] = [];
  const messages = new Map<string, string>();
  return {
    calls,
    messages,
    poster: {
      async post(text: string) {
        const ts = `m${messages.size + 1}`;
        messages.set(ts, text);
        calls.push({ op: 'post' as const, ts, text, at: Date.now() });
        return ts;
      },
      async update(ts: string, text: string) {
        assert.ok(messages.has(ts), `update of unknown message ${ts}`);
        messages.set(ts, text);
        calls.push({ op: 'update' as const, ts, text, at: Date.now() });
      },
    },
  };
}

const squash = (text: string) => text.replace(/\s+/gu, '');

describe('StreamedReply', () => {
  it('posts at once, updates each message at most once an interval, and continues a long reply in new messages', async () => {
    const conversation = recordingConversation();
    const reply = new StreamedReply(conversation.poster, { intervalMs: 60, maxChars: 100 });
    const pieces = Array.from({ length: 40 }, (_, i) => `Piece ${i} says a < b.${i % 5 === 4 ? '\n' : ' '}`);
    for (const piece of pieces) {
      await reply.add(piece);
      await sleep(8);
    }
    await reply.end();

    assert.equal(conversation.calls[0].op, 'post');
    assert.equal(conversation.calls[0].text, 'Piece 0 says a &lt; b.');
    const byMessage = new Map<string, typeof conversation.calls>();
    for (const call of conversation.calls) byMessage.set(call.ts, [...(byMessage.get(call.ts) ?? []), call]);
    assert.ok(byMessage.size > 1, 'a reply over the limit takes several messages');
    for (const [ts, calls] of byMessage) {
      assert.equal(calls[0].op, 'post');
      for (let i = 1; i < calls.length; i += 1) assert.ok(calls[i].at - calls[i - 1].at >= 59, `${ts} updated ${calls[i].at - calls[i - 1].at} ms after its previous call`);
    }
    const final = [...conversation.messages.values()];
    for (const text of final) assert.ok(text.length <= 100);
    assert.equal(squash(final.join('')), squash(pieces.join('').replaceAll('<', '&lt;')));
  });

  it('adds a failure note after what was already shown', async () => {
    const conversation = recordingConversation();
    const reply = new StreamedReply(conversation.poster, { intervalMs: 0 });
    await reply.add('Half an answer');
    await reply.fail('Sorry, something went wrong.');
    assert.deepEqual([...conversation.messages.values()], ['Half an answer\n\nSorry, something went wrong.']);
  });
});

describe('SlashReply', () => {
  it('reports progress while keeping responses in hand, then the rest at the end', async () => {
    const sent: string[] = [];
    const reply = new SlashReply({ respond: async (text) => void sent.push(text) }, { progressMs: 0 });
    for (let i = 0; i < 8; i += 1) await reply.add(`step ${i}\n`);
    await reply.end();
    assert.equal(sent.length, RESPONSE_URL_USES - 1, 'three progress reports and the end');
    assert.deepEqual(sent.slice(0, 3), ['step 0', 'step 1', 'step 2']);
    assert.equal(sent[3], ['step 3', 'step 4', 'step 5', 'step 6', 'step 7'].join('\n'));
  });

  it('says what it left out when a reply needs more messages than a response_url allows', async () => {
    const sent: string[] = [];
    const reply = new SlashReply({ respond: async (text) => void sent.push(text) }, { progressMs: 60_000 });
    await reply.add(Array.from({ length: 400 }, (_, i) => `Line ${i} of a long export.`).join('\n').repeat(2));
    await reply.end();
    assert.equal(sent.length, RESPONSE_URL_USES);
    for (const text of sent) assert.ok(text.length <= SLACK_SECTION_LIMIT, `${text.length}`);
    assert.match(sent.at(-1) ?? '', /\(\d+ more parts? not shown: Slack lets a slash command answer 5 times\. Ask me in a direct message for the whole reply\.\)$/u);
  });
});
