import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FaqStore } from '../../../src/core/faq/faq-store.js';
import { JobBusyError } from '../../../src/core/fine-tuning/fine-tune-jobs.js';
import { describeFailure, newJobId, QueuedFineTunes } from '../../../src/core/fine-tuning/fine-tune-queue.js';
import type { Storage } from '../../../src/core/storage/open-storage.js';
import { silentLogger } from '../../../src/log.js';
import { type Backend, redisBackend } from '../storage-backends.js';

/** The instance side of the queue, with no worker: jobs stay queued, as they would with every worker busy. */
describe('QueuedFineTunes', () => {
  let backend: Backend;
  let first: Storage;
  let second: Storage;
  let instanceA: QueuedFineTunes;
  let instanceB: QueuedFineTunes;

  before(async () => {
    backend = await redisBackend();
    first = await backend.open();
    second = await backend.open();
    instanceA = new QueuedFineTunes(first.shared!, silentLogger);
    instanceB = new QueuedFineTunes(second.shared!, silentLogger);
    await FaqStore.forScope(first.documents, 'shared').add('What is tunebot?', 'A self-hosted FAQ bot.');
  });
  after(async () => {
    await instanceA?.stop();
    await instanceB?.stop();
    await backend?.dispose();
  });

  it('lets one fine-tune per scope in across instances, however close together they ask', async () => {
    const faq = FaqStore.forScope(first.documents, 'shared');
    const attempts = await Promise.allSettled([
      instanceA.start(faq, 'discord:1', 'discord:alice'),
      instanceB.start(faq, 'discord:1', 'discord:bob'),
      instanceA.start(faq, 'discord:1', 'discord:carol'),
    ]);
    const started = attempts.filter((attempt) => attempt.status === 'fulfilled');
    const refused = attempts.flatMap((attempt) => (attempt.status === 'rejected' ? [attempt.reason] : []));
    assert.equal(started.length, 1, 'exactly one started');
    assert.equal(refused.length, 2);
    for (const error of refused) assert.ok(error instanceof JobBusyError, String(error));
    assert.equal(started[0].status === 'fulfilled' && started[0].value.record.status, 'queued');
    // Another scope is not held up.
    const other = await instanceB.start(faq, 'slack:T1', 'slack:dave');
    assert.equal(other.record.scope, 'slack:T1');
    const last = await instanceA.last();
    assert.equal(last?.id, other.record.id, 'every instance sees the newest job');
  });

  it('cancels a job still waiting from any instance: it leaves the queue and its watcher ends', async () => {
    const faq = FaqStore.forScope(first.documents, 'shared');
    const { record, done } = await instanceA.start(faq, 'discord:2', 'discord:erin');
    assert.equal(await instanceB.cancel('discord:2'), true);
    const finished = await done;
    assert.equal(finished.id, record.id);
    assert.equal(finished.status, 'cancelled');
    assert.equal(await instanceB.cancel('discord:2'), false, 'nothing of that scope is left');
    await instanceA.start(faq, 'discord:2', 'discord:erin');
  });

  it('refuses at once, queueing nothing, when the FAQ is empty', async () => {
    const empty = FaqStore.forScope(first.documents, 'empty');
    await assert.rejects(instanceA.start(empty, 'discord:3', 'discord:finn'), { code: 'DATA_INVALID', message: /the FAQ is empty/ });
    assert.equal(await instanceA.cancel('discord:3'), false, 'no job of that scope was queued');
  });

  it('names jobs with ids BullMQ takes: never digits only (random hex can be)', () => {
    for (let i = 0; i < 1000; i++) assert.doesNotMatch(newJobId(), /^\d+$/u);
  });

  it("says what a dead worker's failure means for the admin", () => {
    assert.match(describeFailure('job stalled more than allowable limit'), /stopped mid-job.*checkpoint.*\/model finetune resumes/u);
    assert.equal(describeFailure('out of memory'), 'out of memory');
  });
});
