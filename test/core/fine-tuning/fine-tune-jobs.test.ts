import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FaqStore } from '../../../src/core/faq/faq-store.js';
import type { KeyValueStore } from '../../../src/core/storage/document-store.js';
import { FineTuneJobs, JobBusyError, type JobRecord, type JobSettings } from '../../../src/core/fine-tuning/fine-tune-jobs.js';
import { ModelHost } from '../../../src/core/serving/model-host.js';
import { ModelRegistry } from '../../../src/core/serving/model-registry.js';
import { type LiveEvaluation, ModelScorer } from '../../../src/core/fine-tuning/model-scorer.js';
import { silentLogger } from '../../../src/log.js';
import { ModelError } from '../../../src/model/errors.js';
import { initModel } from '../../../src/model/files/model-dir.js';
import { type Tokenizer, loadTokenizer } from '../../../src/model/files/tokenizer.js';
import { DEFAULT_FINE_TUNE, type TrainingProgress } from '../../../src/model/training/trainer.js';
import { MapStore } from '../../helpers/map-store.js';

const FAQ = [
  ['How do I reset my password?', 'Open Settings and press Reset.'],
  ['Where is the office?', 'On the third floor.'],
  ['What are the opening hours?', 'Nine to five.'],
  ['How can I export my data?', 'Use the export command.'],
  ['Who handles invoices?', 'The billing team.'],
] as const;

/** 5 entries asked 2 ways (the question and a noisy form): 10 examples, 2 steps of 8 per epoch, 4 steps in all. */
function settings(mode: JobSettings['gate']['mode']): JobSettings {
  return {
    fineTune: { ...DEFAULT_FINE_TUNE, epochs: 2, batchSize: 8, validationFraction: 0, earlyStopPatience: 0, executionProvider: 'cpu' },
    gate: { mode, topK: 3, confidentMatch: 0.9, relevantMatch: 0.2, instructions: 'Answer from the FAQ.', heldOutQuestions: 1 },
    noisyQuestions: 1,
    logLevel: 'silent',
  };
}

/** The figures kept for the live version, as /model eval and the local chat page read them. */
function liveEvaluation(): Promise<LiveEvaluation> {
  return new ModelScorer(host, tokenizer, settings('auto').gate, store).liveEvaluation();
}
/** 8 steps: room to be cancelled part-way. */
const CANCELLED_RUN = { epochs: 4 };

let root: string;
let registry: ModelRegistry;
let host: ModelHost;
let tokenizer: Tokenizer;
let store: MapStore;
let faq: FaqStore;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tunebot-jobs-'));
  registry = new ModelRegistry(join(root, 'models'));
  const first = join(root, 'first');
  await initModel(first, 'tiny', 1);
  await registry.publish(first, 'v1');
  await registry.use('v1');
  tokenizer = await loadTokenizer(registry.dirOf('v1'));
  host = new ModelHost((version) => registry.dirOf(version), { executionProvider: 'cpu', logLevel: 'silent' }, silentLogger);
  await host.swapTo('v1');
  store = new MapStore();
  faq = FaqStore.forScope(store, 'test');
  for (const [question, answer] of FAQ) await faq.add(question, answer);
});
after(async () => {
  await host.close();
  await rm(root, { recursive: true, force: true });
});

function jobsWith(mode: JobSettings['gate']['mode'], jobStore: KeyValueStore = store): FineTuneJobs {
  return new FineTuneJobs(jobStore, registry, host, tokenizer, settings(mode), silentLogger);
}

/** Every step the job reports, as it reports it: an observer on the record the job updates in place. */
function observeSteps(record: JobRecord, onStep: (step: number) => void = () => undefined): number[] {
  const steps: number[] = [];
  let current = record.progress;
  Object.defineProperty(record, 'progress', {
    enumerable: true,
    get: () => current,
    set: (progress: JobRecord['progress']) => {
      current = progress;
      if (progress) {
        steps.push(progress.step);
        onStep(progress.step);
      }
    },
  });
  return steps;
}

async function versionNames(): Promise<string[]> {
  return (await registry.versions()).map((version) => version.version);
}

describe('FineTuneJobs', () => {
  it('refuses an empty FAQ with a clear error and records no job', async () => {
    const jobs = jobsWith('auto');
    const empty = FaqStore.forScope(store, 'empty');
    await assert.rejects(jobs.start(empty, 'empty', 'admin'), (error: unknown) => {
      assert.ok(error instanceof ModelError, String(error));
      assert.equal(error.code, 'DATA_INVALID');
      assert.match(error.message, /the FAQ is empty/);
      return true;
    });
    assert.equal(jobs.active, null);
    assert.equal(await jobs.last(), null);
  });

  it('runs one job at a time, reports progress, publishes the new version and with force swaps it in', async () => {
    const jobs = jobsWith('force');
    // What a restart during a job's gate leaves behind: its trained model in the scope's staging folder.
    const stale = join(registry.root, '.staging-test');
    await mkdir(stale);
    await writeFile(join(stale, 'config.json'), '{}');
    const { record, done } = await jobs.start(faq, 'test', 'admin');
    assert.equal(record.status, 'running');
    assert.equal(jobs.active, record);
    // A second start at the first step: the error is kept with the progress it was refused at.
    let refusal: { error: Promise<unknown>; progress: TrainingProgress | undefined } | undefined;
    const steps = observeSteps(record, () => {
      refusal ??= { error: jobs.start(faq, 'test', 'someone else').then(() => null, (error: unknown) => error), progress: record.progress };
    });

    const finished = await done;
    assert.equal(finished.status, 'promoted', finished.error);
    assert.deepEqual(steps, [1, 2, 3, 4]);
    assert.ok(refusal?.progress, 'a second start was tried while the job ran');
    const { progress } = refusal;
    const error = await refusal.error;
    assert.ok(error instanceof JobBusyError, String(error));
    assert.equal(error.record.id, record.id);
    assert.match(error.message, new RegExp(`started ${record.startedAt} by admin, step 1/4, loss ${progress.loss.toFixed(3)}`));
    assert.equal(finished.version, 'v2');
    assert.equal(finished.training?.steps, 4);
    assert.ok(Number.isFinite(finished.training?.finalTrainLoss));
    const gate = finished.gate;
    assert.ok(gate, 'the gate report is kept');
    assert.equal(gate.promote, true);
    assert.match(gate.reason, /force/);
    for (const score of [gate.candidate, gate.current]) {
      assert.ok(score);
      // Every question, and one noisy held-out question per entry (none has alternates).
      assert.equal(score.originals.asked, FAQ.length);
      assert.equal(score.heldOut.asked, FAQ.length);
      for (const set of [score.originals, score.heldOut]) assert.equal(set.correct + set.wrong + set.abstained, set.asked, JSON.stringify(set));
    }
    assert.match(gate.reason, /^the gate is set to force promotion; it answers \d+ right, \d+ wrong, \d+ abstained of 5 held-out questions and \d+ right, \d+ wrong, \d+ abstained of 5 FAQ questions, against .* for the live model$/);

    assert.deepEqual(await versionNames(), ['v1', 'v2']);
    assert.equal(await registry.currentVersion(), 'v2');
    assert.equal(host.version, 'v2');
    const training = JSON.parse(await readFile(join(registry.dirOf('v2'), 'training.json'), 'utf8')) as { steps: number; baseModel: string; gate: unknown };
    assert.deepEqual([training.steps, training.baseModel], [4, registry.dirOf('v1')]);
    assert.deepEqual(training.gate, gate, 'training.json keeps the gate report');
    const live = await liveEvaluation();
    assert.equal(live.version, 'v2');
    assert.deepEqual([live.evaluation?.version, live.evaluation?.faq, live.evaluation?.score], ['v2', 'test', gate.candidate]);
    assert.deepEqual((await readdir(registry.root)).filter((name) => name.startsWith('.')), [], 'no staging folder or checkpoint is left');
    assert.equal(jobs.active, null);
    assert.deepEqual(await jobs.last(), finished);
    assert.ok(finished.finishedAt);
  });

  it('refuses a second start while the first is still preparing its job', async () => {
    const jobs = jobsWith('auto');
    // The first start claims the job, then finds the FAQ empty; the second came in between.
    const empty = FaqStore.forScope(store, 'empty');
    const [first, second] = await Promise.allSettled([jobs.start(empty, 'empty', 'admin'), jobs.start(empty, 'empty', 'other admin')]);
    assert.equal(first.status, 'rejected');
    assert.ok(first.reason instanceof ModelError && first.reason.code === 'DATA_INVALID', String(first.reason));
    assert.equal(second.status, 'rejected');
    assert.ok(second.reason instanceof JobBusyError, String(second.reason));
    assert.match(second.reason.message, /started .* by admin\)/);
    // The claim ends with the start that made it.
    await assert.rejects(jobs.start(empty, 'empty', 'other admin'), (error: unknown) => error instanceof ModelError && error.code === 'DATA_INVALID');
    assert.equal(jobs.active, null);
  });

  let restartedStore: MapStore;
  let checkpoint: { dir: string; step: number };

  it('cancels a job at a step boundary, publishes nothing, and keeps a checkpoint', async () => {
    const jobs = jobsWith('auto');
    const { record, done } = await jobs.start(faq, 'test', 'admin', CANCELLED_RUN);
    restartedStore = store.copy();
    observeSteps(record, () => void jobs.cancel());
    const cancelled = await done;
    assert.equal(cancelled.status, 'cancelled', cancelled.error);
    assert.equal(jobs.active, null);
    assert.equal(await jobs.cancel(), false, 'nothing runs any more');
    assert.deepEqual(await versionNames(), ['v1', 'v2'], 'a cancelled job publishes nothing');
    assert.equal(await registry.currentVersion(), 'v2');
    const dir = /checkpoint in (\S+) resumes it/.exec(cancelled.error ?? '')?.[1];
    assert.ok(dir, cancelled.error);
    const { step } = JSON.parse(await readFile(join(dir, 'progress.json'), 'utf8')) as { step: number };
    assert.ok(step >= 1 && step < 8, `checkpoint at step ${step}`);
    checkpoint = { dir, step };
  });

  it('resumes from the checkpoint at the next start, and with hold publishes the version as held', async () => {
    const jobs = jobsWith('hold');
    const { record, done } = await jobs.start(faq, 'test', 'admin', CANCELLED_RUN);
    const steps = observeSteps(record);
    const finished = await done;
    assert.equal(finished.status, 'held', finished.error);
    assert.deepEqual(steps, Array.from({ length: 8 - checkpoint.step }, (_, i) => checkpoint.step + 1 + i), 'the steps after the checkpoint');
    assert.equal(finished.version, 'v3');
    assert.equal(finished.gate?.promote, false);
    assert.match(finished.gate?.reason ?? '', /hold/);
    assert.deepEqual(await versionNames(), ['v1', 'v2', 'v3']);
    assert.equal(await registry.currentVersion(), 'v2');
    assert.equal(host.version, 'v2');
    const training = JSON.parse(await readFile(join(registry.dirOf('v3'), 'training.json'), 'utf8')) as { baseModel: string; steps: number };
    assert.deepEqual([training.steps, training.baseModel], [8, registry.dirOf('v2')], 'a job fine-tunes the live version');
    // The live version was scored beside the held one: those are its figures now.
    const live = await liveEvaluation();
    assert.deepEqual([live.version, live.evaluation?.score], ['v2', finished.gate?.current]);
    await assert.rejects(stat(checkpoint.dir), /ENOENT/, 'a finished job removes its checkpoint');
  });

  it('marks a job that was running at a restart as interrupted, with how to resume it', async () => {
    const stored = (await restartedStore.get('jobs:last')) as JobRecord;
    assert.equal(stored.status, 'running');
    const afterRestart = jobsWith('auto', restartedStore);
    const recovered = await afterRestart.recoverInterrupted();
    assert.ok(recovered);
    assert.equal(recovered.id, stored.id);
    assert.equal(recovered.status, 'interrupted');
    assert.ok(recovered.finishedAt);
    assert.match(recovered.error ?? '', /restarted.*\/model finetune.*resumes from its last checkpoint/);
    assert.deepEqual(await afterRestart.last(), recovered);
    assert.equal(await afterRestart.recoverInterrupted(), null, 'it is recovered once');

    const finishedLast = await jobsWith('auto').last();
    assert.equal(await jobsWith('auto').recoverInterrupted(), null, 'a finished job is left as it is');
    assert.deepEqual(await jobsWith('auto').last(), finishedLast);
  });
});
