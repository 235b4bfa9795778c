import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AnswerFeedback, DEFAULT_FEEDBACK_LIMITS, type GivenAnswer, type PostedMessage } from '../../../src/core/conversation/feedback.js';
import { faqScopeKey } from '../../../src/core/faq/faq-store.js';
import { Inbox } from '../../../src/core/conversation/inbox.js';
import { BotMetrics } from '../../../src/core/metrics.js';
import type { Storage } from '../../../src/core/storage/open-storage.js';
import { StorageError } from '../../../src/core/storage/storage-error.js';
import { backendFactories, type Backend } from '../storage-backends.js';

const HOUR = 3_600_000;
const HOURS_ANSWER: GivenAnswer = { question: 'What are the opening hours?', askedBy: 'slack:T1:UASK', path: 'faq', entryId: 'hours' };

/** Message `id` in channel C1 of workspace T1 on Slack. */
const inC1 = (id: string, workspace = 'T1'): PostedMessage => ({ platform: 'slack', workspace, channel: 'C1', messageId: id });

/** Feedback as app.ts builds it, on `storage`, with a clock the test moves. */
function feedbackOn(storage: Storage, scope: 'shared' | 'per-scope', limits = DEFAULT_FEEDBACK_LIMITS) {
  const clock = { now: Date.parse('2025-03-01T12:00:00Z') };
  const metrics = new BotMetrics();
  const scopes = { scopeKeyOf: (platform: string, workspace: string) => faqScopeKey(scope, platform, workspace), inboxOf: (key: string) => new Inbox(storage.documents, key) };
  const feedback = new AnswerFeedback(storage.documents, scopes, metrics, limits, () => clock.now);
  const counted = async (kind: 'up' | 'down') => Number(new RegExp(`^tunebot_feedback_total\\{kind="${kind}"\\} (\\d+)$`, 'mu').exec(await metrics.render())?.[1]);
  const inbox = (platform: string, workspace: string) => scopes.inboxOf(scopes.scopeKeyOf(platform, workspace)).items();
  return { feedback, clock, counted, inbox };
}

for (const makeBackend of backendFactories) {
  describe(`answer feedback on ${makeBackend.name}`, () => {
    let backend: Backend;
    let namespaces = 0;
    /** A store of its own for each test: a fresh namespace of the backend. */
    const fresh = async () => backend.open(`${backend.namespace}-${(namespaces += 1)}`);

    before(async () => {
      backend = await makeBackend();
    });
    after(async () => backend?.dispose());

    it('counts each kind once per user and answer: a vote taken back and given again stands again, uncounted', async () => {
      const { feedback, counted, inbox } = feedbackOn(await fresh(), 'per-scope');
      await feedback.remember([inC1('1.1'), inC1('1.2')], HOURS_ANSWER);
      assert.equal(await feedback.react(inC1('1.1'), 'up', 'UAMY'), 'counted');
      assert.equal(await feedback.react(inC1('1.2'), 'up', 'UAMY'), 'unchanged', "the answer's second part is the same answer");
      assert.equal(await feedback.withdraw(inC1('1.1'), 'up', 'UAMY'), 'withdrawn');
      assert.equal(await feedback.withdraw(inC1('1.1'), 'up', 'UAMY'), 'unchanged');
      assert.equal(await feedback.react(inC1('1.1'), 'up', 'UAMY'), 'restored');
      assert.equal(await feedback.react(inC1('1.1'), 'down', 'UAMY'), 'counted', 'a user may give both');
      assert.equal(await feedback.react(inC1('1.1'), 'down', 'UBOB'), 'counted');
      assert.equal(await feedback.withdraw(inC1('1.1'), 'down', 'UBOB'), 'withdrawn');
      assert.deepEqual([await counted('up'), await counted('down')], [1, 2]);
      assert.deepEqual(await feedback.tallies('slack', 'T1'), new Map([['hours', { up: 1, down: 1 }]]));
      const items = await inbox('slack', 'T1');
      assert.equal(items.length, 1, 'the question is in the inbox once');
      assert.deepEqual({ ...items[0], at: undefined }, { question: HOURS_ANSWER.question, askedBy: 'slack:T1:UASK', reason: 'thumbs-down', entryId: 'hours', at: undefined });
      assert.equal(items[0].at, '2025-03-01T12:00:00.000Z');
    });

    it('ignores reactions on messages that are not remembered answers, and keeps scopes apart', async () => {
      const { feedback, counted, inbox } = feedbackOn(await fresh(), 'per-scope');
      await feedback.remember([inC1('2.1')], HOURS_ANSWER);
      assert.equal(await feedback.react(inC1('2.2'), 'down', 'UAMY'), 'unknown');
      assert.equal(await feedback.react(inC1('2.1', 'T2'), 'down', 'UAMY'), 'unknown', 'the same message id in another workspace');
      assert.equal(await feedback.react({ ...inC1('2.1'), channel: 'C2' }, 'down', 'UAMY'), 'unknown');
      assert.equal(await feedback.react({ ...inC1('2.1'), platform: 'discord' }, 'down', 'UAMY'), 'unknown');
      assert.deepEqual([await counted('up'), await counted('down')], [0, 0]);
      assert.deepEqual(await inbox('slack', 'T1'), []);
    });

    it('finds a message of any workspace in a shared FAQ scope, and puts its question in the shared inbox', async () => {
      const { feedback, inbox } = feedbackOn(await fresh(), 'shared');
      await feedback.remember([inC1('3.1', 'T1')], HOURS_ANSWER);
      await feedback.remember([{ platform: 'discord', workspace: 'G1', channel: 'C1', messageId: '3.1' }], { ...HOURS_ANSWER, question: 'When do you open?', askedBy: 'discord:G1:U9' });
      assert.equal(await feedback.react({ platform: 'discord', workspace: 'G1', channel: 'C1', messageId: '3.1' }, 'down', 'U8'), 'counted');
      assert.deepEqual((await inbox('slack', 'T1')).map((item) => [item.question, item.askedBy]), [['When do you open?', 'discord:G1:U9']]);
    });

    it('forgets answers past their lifetime and past the capacity, oldest first', async () => {
      const store = await fresh();
      const { feedback, clock, counted } = feedbackOn(store, 'per-scope', { lifetimeMs: 24 * HOUR, capacity: 3, votesPerAnswer: 10 });
      for (const id of ['4.1', '4.2', '4.3', '4.4']) await feedback.remember([inC1(id)], { ...HOURS_ANSWER, question: `question ${id}` });
      assert.equal(await feedback.react(inC1('4.1'), 'up', 'UAMY'), 'unknown', 'the oldest of four, past a capacity of three');
      assert.equal(await feedback.react(inC1('4.2'), 'up', 'UAMY'), 'counted');
      clock.now += 24 * HOUR - 1;
      assert.equal(await feedback.react(inC1('4.3'), 'up', 'UAMY'), 'counted', 'a moment before its lifetime ends');
      clock.now += 1;
      assert.equal(await feedback.react(inC1('4.4'), 'up', 'UAMY'), 'unknown', 'once its lifetime has ended');
      assert.equal(await counted('up'), 2);
      await feedback.remember([inC1('4.5')], HOURS_ANSWER);
      const stored = (await store.documents.get('feedback:slack:T1')) as { messages: string[] }[];
      assert.deepEqual(stored.map((answer) => answer.messages), [['slack/T1/C1/4.5']], 'expired answers are dropped from storage on the next write');
    });

    it('stops counting new voters on an answer that has all the votes it keeps; those it has may still change theirs', async () => {
      const { feedback, counted } = feedbackOn(await fresh(), 'per-scope', { ...DEFAULT_FEEDBACK_LIMITS, votesPerAnswer: 2 });
      await feedback.remember([inC1('5.1')], HOURS_ANSWER);
      assert.equal(await feedback.react(inC1('5.1'), 'up', 'U1'), 'counted');
      assert.equal(await feedback.react(inC1('5.1'), 'up', 'U2'), 'counted');
      assert.equal(await feedback.react(inC1('5.1'), 'up', 'U3'), 'unchanged');
      assert.equal(await feedback.withdraw(inC1('5.1'), 'up', 'U1'), 'withdrawn');
      assert.equal(await feedback.react(inC1('5.1'), 'up', 'U1'), 'restored');
      assert.equal(await counted('up'), 2);
    });

    it('counts a vote once when two instances get the same reaction at the same time', async () => {
      const store = await fresh();
      const other = await backend.open(`${backend.namespace}-${namespaces}`);
      const first = feedbackOn(store, 'per-scope');
      const second = feedbackOn(other, 'per-scope');
      await first.feedback.remember([inC1('6.1')], HOURS_ANSWER);
      const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? first : second).feedback.react(inC1('6.1'), 'down', 'UAMY')));
      assert.deepEqual(outcomes.toSorted(), ['counted', ...Array<string>(7).fill('unchanged')]);
      assert.equal(await first.counted('down') + await second.counted('down'), 1);
      assert.equal((await first.inbox('slack', 'T1')).length, 1);
    });

    it('refuses an answer without messages or spread over channels, and a stored record that is not a list', async () => {
      const store = await fresh();
      const { feedback } = feedbackOn(store, 'per-scope');
      await assert.rejects(feedback.remember([], HOURS_ANSWER), /needs the messages it was posted in/u);
      await assert.rejects(feedback.remember([inC1('7.1'), { ...inC1('7.2'), channel: 'C2' }], HOURS_ANSWER), /in one channel; got slack\/T1\/C1\/7\.1, slack\/T1\/C2\/7\.2/u);
      await store.documents.set('feedback:slack:T1', { not: 'a list' });
      await assert.rejects(feedback.react(inC1('7.1'), 'up', 'UAMY'), (error: unknown) => error instanceof StorageError && error.code === 'STORAGE_CORRUPT' && /not a list/u.test(error.message));
      assert.deepEqual(await store.documents.get('feedback:slack:T1'), { not: 'a list' }, 'the record is left as it was');
    });
  });
}
