import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { RedisSeenEvents } from '../../src/adapters/slack/redis-seen-events.js';
import { SlackAdapter } from '../../src/adapters/slack/slack-adapter.js';
import { toSlackText } from '../../src/adapters/slack/slack-text.js';
import type { Storage } from '../../src/core/storage/open-storage.js';
import { type Backend, redisBackend } from '../core/storage-backends.js';
import { type LoopbackSlack, postSigned } from '../helpers/loopback-slack.js';
import { BOT_TOKEN, createSlackScratchApp, directMessage, eventCallback, postsIn, replyIn, SIGNING_SECRET, type SlackScratchApp, startWorkspaceSlack, TEAM } from '../helpers/slack-fixture.js';
import { started } from '../helpers/started.js';

/**
 * Slack's retries when several bot instances share the traffic: the event ids and messages
 * already answered are claimed in Redis (SET NX PX), so a retry that reaches another instance
 * than the first delivery is skipped there.
 */
/** Seen events on `storage`'s Redis connection and namespace, as `tunebot start` makes them. */
function seenOn(storage: Storage, ttlMs?: number): RedisSeenEvents {
  assert.ok(storage.shared, 'a Redis storage');
  return new RedisSeenEvents(storage.shared.redis, storage.shared.namespace, ttlMs);
}

describe('RedisSeenEvents', () => {
  let backend: Backend;
  let first: Storage;
  let second: Storage;

  before(async () => {
    backend = await redisBackend();
    first = await backend.open();
    second = await backend.open();
  });
  after(async () => {
    await backend?.dispose();
  });

  it('claims a key once, under <namespace>:slack-seen:, for the time-to-live', async () => {
    const seen = seenOn(first, 60_000);
    assert.equal(await seen.claim('event:Ev1'), true);
    assert.equal(await seen.claim('event:Ev1'), false);
    assert.equal(await seen.claim('event:Ev2'), true);
    assert.deepEqual(await backend.redisKeys(), [`${backend.namespace}:slack-seen:event:Ev1`, `${backend.namespace}:slack-seen:event:Ev2`]);
    const ttl = await backend.redisPttl(seen.keyOf('event:Ev1'));
    assert.ok(ttl > 59_000 && ttl <= 60_000, `${ttl} ms left`);
  });

  it('lets a key be claimed again once its time-to-live has passed', async () => {
    const seen = seenOn(first, 200);
    assert.equal(await seen.claim('event:short-lived'), true);
    assert.equal(await seen.claim('event:short-lived'), false);
    await sleep(250);
    assert.equal(await seen.claim('event:short-lived'), true);
  });

  it('gives each key to exactly one of two connections claiming it at once', async () => {
    const [a, b] = [seenOn(first), seenOn(second)];
    const keys = Array.from({ length: 50 }, (_, i) => `event:race-${i}`);
    // Every other key is asked for by the second connection first, so that neither always sends first.
    const results = await Promise.all(keys.map((key, i) => Promise.all(i % 2 === 0 ? [a.claim(key), b.claim(key)] : [b.claim(key), a.claim(key)])));
    for (const [i, pair] of results.entries()) assert.equal(pair.filter(Boolean).length, 1, `${keys[i]}: ${pair}`);
  });

  it('fails a claim with the client\'s error when the connection is closed', async () => {
    const closed = await backend.open();
    await closed.close();
    await assert.rejects(seenOn(closed).claim('event:closed'), /closed/i);
  });
});

describe('Slack retries across two instances sharing Redis (HTTP mode)', () => {
  let backend: Backend;
  let slack: LoopbackSlack;
  const instances: { app: SlackScratchApp; storage: Storage; adapter: SlackAdapter; eventsUrl: string }[] = [];

  const startInstance = async (app: SlackScratchApp, seenEvents: RedisSeenEvents, logger = pino({ level: 'silent' })) => {
    const adapter = await started(new SlackAdapter(app.scratch.app.engine, {
      config: { mode: 'http', botToken: BOT_TOKEN, signingSecret: SIGNING_SECRET, appToken: null, port: 0, apiUrl: slack.apiUrl },
      logger,
      host: '127.0.0.1',
      seenEvents,
    }));
    return { adapter, eventsUrl: `http://127.0.0.1:${adapter.port}/slack/events` };
  };
  const turnsOf = async (app: SlackScratchApp, user: string) => (await app.scratch.app.services.memory.exportUser({ platform: 'slack', workspace: TEAM }, user)).turns.length;

  before(async () => {
    backend = await redisBackend();
    slack = await startWorkspaceSlack();
    for (let i = 0; i < 2; i += 1) {
      const storage = await backend.open();
      const app = await createSlackScratchApp();
      instances.push({ app, storage, ...(await startInstance(app, seenOn(storage))) });
    }
  });
  after(async () => {
    for (const { adapter, app } of instances) {
      await adapter.stop();
      await app.scratch.close();
    }
    await slack?.close();
    await backend?.dispose();
  });

  it('answers an event once when its retry (X-Slack-Retry-Num: 1) reaches the other instance at the same time', async () => {
    const [a, b] = instances;
    const body = eventCallback(directMessage('D-BEN', 'UBEN', 'What is tunebot?'), 'Ev-shared-retry');
    const responses = await Promise.all([postSigned(a.eventsUrl, body, { signingSecret: SIGNING_SECRET }), postSigned(b.eventsUrl, body, { signingSecret: SIGNING_SECRET, retryNum: 1 })]);
    assert.deepEqual(responses.map((response) => response.status), [200, 200]);
    await replyIn(slack, a.adapter, 'D-BEN');
    await b.adapter.idle();
    assert.deepEqual(postsIn(slack, 'D-BEN').map((call) => call.args.text), [toSlackText(a.app.sampleAnswers.get('What is tunebot?') ?? '')]);
    assert.deepEqual((await Promise.all(instances.map(({ app }) => turnsOf(app, 'UBEN')))).sort(), [0, 2], "one engine answered; the other's never saw the question");
    assert.ok(await backend.redisPttl(`${backend.namespace}:slack-seen:event:Ev-shared-retry`) > 0, 'the claim is in the shared Redis');
  });

  it('answers anyway, and says so in the log, when the shared store cannot be reached', async () => {
    const closed = await backend.open();
    await closed.close();
    const lines: string[] = [];
    const { app } = instances[0];
    const cutOff = await startInstance(app, seenOn(closed), pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }));
    try {
      const response = await postSigned(cutOff.eventsUrl, eventCallback(directMessage('D-ZOE', 'UZOE', 'What is tunebot?'), 'Ev-store-down'), { signingSecret: SIGNING_SECRET });
      assert.equal(response.status, 200);
      const [reply] = await replyIn(slack, cutOff.adapter, 'D-ZOE');
      assert.equal(reply.args.text, toSlackText(app.sampleAnswers.get('What is tunebot?') ?? ''));
      assert.ok(lines.some((line) => line.includes('could not check whether a Slack event was already answered')), lines.join('\n'));
    } finally {
      await cutOff.adapter.stop();
    }
  });
});
