import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SlackAdapter, type SlackConfig } from '../../src/adapters/slack/slack-adapter.js';
import { toSlackText } from '../../src/adapters/slack/slack-text.js';
import { silentLogger } from '../../src/log.js';
import { type LoopbackSlack, waitFor } from '../helpers/loopback-slack.js';
import type { SocketAck } from '../helpers/loopback-slack-socket.js';
import { APP_TOKEN, appMention, BOT_ID, BOT_TOKEN, BOT_USER, directMessage, eventCallback, replyIn, type SlackWorkspace, slashCommand, startSlackWorkspace, TEAM } from '../helpers/slack-fixture.js';
import { started } from '../helpers/started.js';

/**
 * The Slack adapter in Socket Mode, as Slack drives it: Bolt's Socket Mode receiver asks the
 * loopback Slack for a connection with the app token, takes envelopes over the WebSocket and
 * acknowledges them there, and answers through the loopback Web API. The engine behind it is
 * the real one, with a real tiny model and the sample FAQ.
 */
const socketConfig = (apiUrl: string, appToken: string): SlackConfig => ({ mode: 'socket', botToken: BOT_TOKEN, signingSecret: null, appToken, port: 0, apiUrl });

describe('Slack adapter in Socket Mode (loopback Slack)', () => {
  let workspace: SlackWorkspace;
  let slack: LoopbackSlack;
  let adapter: SlackAdapter;

  const deliverEvent = (event: Record<string, unknown>, eventId: string, retryAttempt = 0) =>
    slack.socketMode.deliver('events_api', eventCallback(event, eventId), { retryAttempt, retryReason: retryAttempt > 0 ? 'timeout' : '' });
  const ackOf = (envelopeId: string): Promise<SocketAck> => waitFor(`the ack of envelope ${envelopeId}`, () => slack.socketMode.ackOf(envelopeId));
  const answerOf = (question: string) => toSlackText(workspace.sampleAnswers.get(question) ?? '');
  const startWith = (appToken: string) => started(new SlackAdapter(workspace.scratch.app.engine, { config: socketConfig(slack.apiUrl, appToken), logger: silentLogger }));

  before(async () => {
    workspace = await startSlackWorkspace();
    slack = workspace.slack;
    adapter = await startWith(APP_TOKEN);
  });

  after(async () => {
    await adapter?.stop();
    await workspace?.close();
  });

  it('connects with the app token: apps.connections.open, then the URL it handed out, which says hello', () => {
    assert.equal(adapter.port, null);
    assert.deepEqual(adapter.bot, { userId: BOT_USER, botId: BOT_ID, teamId: TEAM });
    assert.deepEqual(slack.callsTo('apps.connections.open').map((call) => call.token), [APP_TOKEN]);
    assert.deepEqual(slack.callsTo('auth.test').map((call) => call.token), [BOT_TOKEN]);
    assert.equal(slack.socketMode.openConnections().length, 1);
  });

  it('acknowledges an app_mention envelope and answers in its thread with chat.postMessage', async () => {
    const mention = appMention('C-MENTION', 'UMIA', 'How do I export my data?');
    const envelopeId = deliverEvent(mention, 'Ev-socket-mention');
    assert.deepEqual((await ackOf(envelopeId)).payload, {});
    const [post] = await replyIn(slack, adapter, 'C-MENTION');
    assert.equal(post.args.thread_ts, mention.ts, 'the reply goes in the thread of the mention');
    assert.equal(post.token, BOT_TOKEN);

    const memory = await workspace.scratch.app.services.memory.exportUser({ platform: 'slack', workspace: TEAM }, 'UMIA');
    assert.deepEqual(memory.turns.map((turn) => turn.role), ['user', 'assistant']);
    assert.equal(memory.turns[0].text, 'How do I export my data?');
    const reply = [...slack.messages.values()].find((message) => message.channel === 'C-MENTION');
    assert.equal(reply?.text, toSlackText(memory.turns[1].text), "the message ends as the engine's answer");
  });

  it('acknowledges a slash command envelope within 3 s, then answers through response_url', async () => {
    const responseUrl = slack.responseUrl();
    const envelopeId = slack.socketMode.deliver('slash_commands', slashCommand('/ask', 'What is tunebot?', 'UZOE', 'C-ASK', responseUrl));
    const ack = await ackOf(envelopeId);
    const delivered = slack.socketMode.delivered.find((envelope) => envelope.envelopeId === envelopeId);
    const ackMs = ack.at - (delivered?.at ?? 0);
    assert.ok(ackMs < 3000, `acknowledged in ${ackMs} ms`);
    assert.deepEqual(ack.payload, {}, 'a bare ack: the answer comes through response_url');
    const answer = await waitFor('the response_url post', () => slack.responses.find((posted) => responseUrl.endsWith(`/${posted.id}`)));
    assert.ok(answer.at >= ack.at, 'the work is answered after the acknowledgement');
    assert.deepEqual(answer.body, { response_type: 'in_channel', replace_original: false, text: answerOf('What is tunebot?') });
  });

  it('answers an event once when Slack delivers it again (retry_attempt 1), and acknowledges both deliveries', async () => {
    const question = directMessage('D-BEN', 'UBEN', 'What is tunebot?');
    const first = deliverEvent(question, 'Ev-socket-retried');
    const retry = deliverEvent(question, 'Ev-socket-retried', 1);
    await Promise.all([ackOf(first), ackOf(retry)]);
    await replyIn(slack, adapter, 'D-BEN');
    // Answered after the retry arrived: once it is done, so is whatever the retry started.
    deliverEvent(directMessage('D-BEN', 'UBEN', 'How do I see the FAQ?'), 'Ev-socket-after-retry');
    const replies = await replyIn(slack, adapter, 'D-BEN', 2);
    assert.deepEqual(replies.map((call) => call.args.text), [answerOf('What is tunebot?'), answerOf('How do I see the FAQ?')]);
  });

  it("answers Slack's pings with pongs, and pings Slack", async () => {
    const [connection] = slack.socketMode.openConnections();
    await waitFor('a pong and a ping from the app', () => (connection.pongs >= 1 && connection.pings >= 1 ? true : undefined));
  });

  it('opens a new connection when Slack asks for a refresh, and answers the events that come over it', async () => {
    const [before] = slack.socketMode.openConnections();
    slack.socketMode.refresh();
    const [after] = await waitFor('a new connection', () => {
      const open = slack.socketMode.openConnections();
      return before.closedAt !== null && open.length === 1 && open[0] !== before ? open : undefined;
    }, 20_000);
    assert.equal(slack.callsTo('apps.connections.open').length, 2, 'a fresh URL for the new connection');

    const envelopeId = deliverEvent(directMessage('D-ZOE', 'UZOE', 'What is tunebot?'), 'Ev-socket-after-refresh');
    assert.equal((await ackOf(envelopeId)).connection, after.id);
    const [reply] = await replyIn(slack, adapter, 'D-ZOE');
    assert.equal(reply.args.text, answerOf('What is tunebot?'));
  });

  it('fails to start with SLACK_AUTH_FAILED, at once, when Slack refuses the app token', async () => {
    const connectionsBefore = slack.socketMode.connections.length;
    const startedAt = Date.now();
    await assert.rejects(startWith('xapp-1-revoked'), { name: 'SlackAdapterError', code: 'SLACK_AUTH_FAILED', message: /^Slack refused the app token \(apps\.connections\.open\): .*invalid_auth/ });
    const failedMs = Date.now() - startedAt;
    assert.ok(failedMs < 3000, `failed after ${failedMs} ms`);
    assert.equal(slack.callsTo('apps.connections.open').at(-1)?.token, 'xapp-1-revoked');
    assert.equal(slack.socketMode.connections.length, connectionsBefore, 'no connection was opened');
  });

  it('gives up with SLACK_UNREACHABLE when the WebSocket opens but never says hello, and closes it', async () => {
    slack.socketMode.sendsHello = false;
    try {
      const connectionsBefore = slack.socketMode.connections.length;
      await assert.rejects(
        started(new SlackAdapter(workspace.scratch.app.engine, { config: socketConfig(slack.apiUrl, APP_TOKEN), logger: silentLogger, connectTimeoutMs: 500 })),
        { name: 'SlackAdapterError', code: 'SLACK_UNREACHABLE', message: /within 0\.5 s.*never said hello/ },
      );
      const opened = slack.socketMode.connections.slice(connectionsBefore);
      assert.ok(opened.length >= 1, 'it did connect');
      await waitFor('the silent connections to close', () => opened.every((connection) => connection.closedAt !== null) || undefined);
    } finally {
      slack.socketMode.sendsHello = true;
    }
  });

  it('refuses another kind of token as the app token before calling Slack', async () => {
    const callsBefore = slack.calls.length;
    await assert.rejects(startWith(BOT_TOKEN), { code: 'SLACK_CONFIG_INVALID', message: /starts with xapp- .*: set slack\.appToken \(TUNEBOT_SLACK_APP_TOKEN or SLACK_APP_TOKEN\)/ });
    assert.equal(slack.calls.length, callsBefore);
  });
});
