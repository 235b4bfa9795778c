import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DISCORD_MESSAGES } from '../../src/adapters/discord/discord-adapter.js';
import { EditStream } from '../../src/adapters/edit-stream.js';
import { SLACK_MESSAGES, toSlackText } from '../../src/adapters/slack/slack-text.js';

/** A conversation that keeps what was posted and edited, with the time of each call; `failAt` makes that call (0 is the first) throw. */
function recordingConversation(failAt = -1) {
  const calls: { op: 'post' | 'edit'; id: string; text: string; at: number }[] = [];
  const messages = new Map<string, string>();
  const record = (op: 'post' | 'edit', id: string, text: string) => {
    if (calls.length === failAt) throw new Error(`the platform refused ${op} ${id}`);
    messages.set(id, text);
    calls.push({ op, id, text, at: Date.now() });
  };
  return {
    calls,
    messages,
    platform: {
      async post(index: number, text: string) {
        const id = `m${index + 1}`;
        assert.ok(!messages.has(id), `message ${index} posted twice`);
        record('post', id, text);
        return id;
      },
      async edit(message: { index: number; id: string }, text: string) {
        assert.ok(messages.has(message.id), `edit of unknown message ${message.id}`);
        assert.equal(message.id, `m${message.index + 1}`);
        record('edit', message.id, text);
      },
    },
  };
}

const squash = (text: string) => text.replace(/\s+/gu, '');

describe('EditStream', () => {
  it('posts at once, edits each message at most once an interval, and continues a long reply in new messages', async () => {
    const conversation = recordingConversation();
    const posted: string[] = [];
    const reply = new EditStream(conversation.platform, { format: { ...SLACK_MESSAGES, limit: 100 }, intervalMs: 60, render: toSlackText, onPosted: (id) => posted.push(id) });
    const pieces = Array.from({ length: 40 }, (_, i) => `Piece ${i} says a < b.${i % 5 === 4 ? '\n' : ' '}`);
    for (const piece of pieces) {
      reply.push(piece);
      await sleep(8);
    }
    await reply.finish();

    assert.equal(conversation.calls[0].op, 'post');
    assert.equal(conversation.calls[0].text, 'Piece 0 says a &lt; b.', 'the first text is posted at once, rendered for the platform');
    const byMessage = new Map<string, typeof conversation.calls>();
    for (const call of conversation.calls) byMessage.set(call.id, [...(byMessage.get(call.id) ?? []), call]);
    assert.ok(byMessage.size > 1, 'a reply over the limit takes several messages');
    assert.deepEqual(posted, [...byMessage.keys()], 'onPosted hears of each message as it is posted');
    assert.equal(reply.messageCount, byMessage.size);
    for (const [id, calls] of byMessage) {
      assert.equal(calls[0].op, 'post');
      for (let i = 1; i < calls.length; i += 1) assert.ok(calls[i].at - calls[i - 1].at >= 59, `${id} edited ${calls[i].at - calls[i - 1].at} ms after its previous call`);
    }
    const final = [...conversation.messages.values()];
    for (const text of final) assert.ok(text.length <= 100);
    assert.equal(squash(final.join('')), squash(pieces.join('').replaceAll('<', '&lt;')));
  });

  it('shows text that arrived during the interval once it has passed, without waiting for more', async () => {
    const conversation = recordingConversation();
    const reply = new EditStream(conversation.platform, { format: DISCORD_MESSAGES, intervalMs: 80 });
    reply.push('First.');
    await sleep(10);
    reply.push(' Second.');
    await sleep(150);
    assert.deepEqual(
      conversation.calls.map((call) => [call.op, call.text]),
      [
        ['post', 'First.'],
        ['edit', 'First. Second.'],
      ],
    );
    await reply.finish();
    assert.equal(conversation.calls.length, 2, 'nothing was left to show');
  });

  it('shows what is pushed after finish() at the next finish(), by editing the last message', async () => {
    const conversation = recordingConversation();
    const reply = new EditStream(conversation.platform, { format: DISCORD_MESSAGES, intervalMs: 20 });
    reply.push('The answer.');
    await reply.finish();
    reply.push('\n\nA note about the file.');
    await sleep(40);
    assert.equal(conversation.calls.length, 1, 'nothing is shown between finish() calls');
    await reply.finish();
    assert.deepEqual([...conversation.messages.values()], ['The answer.\n\nA note about the file.']);
  });

  it('adds a failure note on a line after what was already said, or alone', async () => {
    const conversation = recordingConversation();
    const reply = new EditStream(conversation.platform, { format: DISCORD_MESSAGES, intervalMs: 0 });
    reply.push('Half an answer \n');
    await reply.fail('Sorry, something went wrong.');
    assert.deepEqual([...conversation.messages.values()], ['Half an answer\nSorry, something went wrong.']);
    const silent = recordingConversation();
    await new EditStream(silent.platform, { format: DISCORD_MESSAGES, intervalMs: 0 }).fail('Sorry, something went wrong.');
    assert.deepEqual([...silent.messages.values()], ['Sorry, something went wrong.']);
  });

  it('stops at the first refused post or edit, and finish() and fail() rethrow it', async () => {
    const conversation = recordingConversation(1);
    const reply = new EditStream(conversation.platform, { format: DISCORD_MESSAGES, intervalMs: 10 });
    reply.push('One.');
    await sleep(20);
    reply.push(' Two.');
    await sleep(30);
    reply.push(' Three.');
    await sleep(30);
    await assert.rejects(reply.finish(), /the platform refused edit m1/u);
    await assert.rejects(reply.fail('Sorry.'), /the platform refused edit m1/u);
    assert.deepEqual(conversation.calls.map((call) => call.text), ['One.'], 'no call after the refused one');
  });
});
