import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SLACK_MESSAGES } from '../../src/adapters/slack/slack-text.js';
import { RESPONSE_URL_USES, SlashReply } from '../../src/adapters/slack/slash-reply.js';

describe('SlashReply', () => {
  it('reports progress while keeping responses in hand, then the rest at the end', async () => {
    const sent: string[] = [];
    const reply = new SlashReply({ respond: async (text) => void sent.push(text) }, { progressMs: 0 });
    for (let i = 0; i < 8; i += 1) await reply.push(`step ${i}\n`);
    await reply.finish();
    assert.equal(sent.length, RESPONSE_URL_USES - 1, 'three progress reports and the end');
    assert.deepEqual(sent.slice(0, 3), ['step 0', 'step 1', 'step 2']);
    assert.equal(sent[3], ['step 3', 'step 4', 'step 5', 'step 6', 'step 7'].join('\n'));
  });

  it('says what it left out when a reply needs more messages than a response_url allows', async () => {
    const sent: string[] = [];
    const reply = new SlashReply({ respond: async (text) => void sent.push(text) }, { progressMs: 60_000 });
    await reply.push(Array.from({ length: 400 }, (_, i) => `Line ${i} of a long export.`).join('\n').repeat(2));
    await reply.finish();
    assert.equal(sent.length, RESPONSE_URL_USES);
    for (const text of sent) assert.ok(text.length <= SLACK_MESSAGES.limit, `${text.length}`);
    assert.match(sent.at(-1) ?? '', /\(\d+ more parts? not shown: Slack lets a slash command answer 5 times\. Ask me in a direct message for the whole reply\.\)$/u);
  });
});
