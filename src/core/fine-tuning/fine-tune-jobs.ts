import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CodedError } from '../../coded-error.js';
import type { Logger } from '../../log.js';
import { ModelError } from '../../model/errors.js';
import { readConfig } from '../../model/files/model-files.js';
import type { WeightType } from '../../model/quantize.js';
import type { Tokenizer } from '../../model/files/tokenizer.js';
import { startFineTune } from '../../model/training/fine-tune-job.js';
import type { FineTuneSettings, TrainingProgress, TrainingRecord } from '../../model/training/trainer.js';
import type { FaqEntry } from '../faq/entry.js';
import type { FaqStore } from '../faq/faq-store.js';
import type { KeyValueStore } from '../storage/document-store.js';
import { BotMetrics } from '../metrics.js';
import type { LiveModel } from '../serving/live-model.js';
import type { ModelRegistry } from '../serving/model-registry.js';
import { ModelRollout } from '../serving/model-rollout.js';
import { ModelScorer, promptBudget } from './model-scorer.js';
import { type GateReport, type GateSettings, gateDecision } from './regression-gate.js';
import { faqTrainingExamples } from './training-examples.js';

/**
 * Fine-tuning as a background job: one at a time, on the scope's FAQ, from the live version.
 * The job trains (in the trainer's own process), scores the result with the regression
 * gate, publishes it as the next version, and swaps it in when the gate says so. Its record
 * is kept in the store, so a restart finds a job that was running and marks it interrupted.
 */
export type JobStatus = 'queued' | 'running' | 'promoted' | 'held' | 'failed' | 'cancelled' | 'interrupted';

export interface JobRecord {
  readonly id: string;
  readonly scope: string;
  readonly requestedBy: string;
  status: JobStatus;
  readonly startedAt: string;
  finishedAt?: string;
  progress?: TrainingProgress;
  version?: string;
  training?: Pick<TrainingRecord, 'steps' | 'finalTrainLoss' | 'validation' | 'seconds'>;
  gate?: GateReport;
  error?: string;
  /** The failure's code, when it had one (TRAINING_DIVERGED, OUT_OF_MEMORY, ...). */
  errorCode?: string;
}

export interface JobSettings {
  readonly fineTune: Omit<FineTuneSettings, 'modelDir' | 'outDir' | 'checkpointDir'>;
  readonly gate: GateSettings & { readonly mode: 'auto' | 'force' | 'hold' };
  /** Noisy forms of each entry's phrasings that training asks besides them (training-examples.ts). */
  readonly noisyQuestions: number;
  readonly logLevel: string;
  /** How the bot will run the candidate (model.weights): the gate scores it that way. float32 when left out. */
  readonly servingWeights?: WeightType;
}

/** Fine-tuning as the commands see it, whether this process trains (FineTuneJobs) or a queue's worker does (QueuedFineTunes). */
export interface FineTunes {
  /** Starts a job on the scope's FAQ; throws JobBusyError when one is running there. */
  start(faq: FaqStore, scope: string, requestedBy: string, overrides?: Partial<JobSettings['fineTune']>): Promise<{ record: JobRecord; done: Promise<JobRecord> }>;
  /** Asks the scope's running job to stop at its next step; false when none runs. */
  cancel(scope: string): Promise<boolean>;
  /** The running job, else the last one that finished. */
  last(): Promise<JobRecord | null>;
  /** At start-up: marks a job cut off by a restart. */
  recoverInterrupted(): Promise<JobRecord | null>;
  /** At shutdown: stops what this process runs or watches, and waits for it. */
  stop(): Promise<JobRecord | null>;
}

const RECORD_KEY = 'jobs:last';

export class FineTuneJobs implements FineTunes {
  private running: { record: JobRecord; cancel: () => void; done: Promise<JobRecord> } | null = null;
  /** A start between its busy check and its job: a second start meanwhile is refused too. */
  private starting: JobRecord | null = null;
  private readonly scorer: ModelScorer;

  constructor(
    private readonly store: KeyValueStore,
    private readonly registry: ModelRegistry,
    host: LiveModel,
    private readonly tokenizer: Tokenizer,
    private readonly settings: JobSettings,
    private readonly logger: Logger,
    private readonly metrics: BotMetrics = new BotMetrics(),
    /** How a promoted version goes live; by default only here (one instance). */
    private readonly rollout: ModelRollout = new ModelRollout(registry, host, null, logger),
  ) {
    this.scorer = new ModelScorer(host, tokenizer, settings.gate, store);
  }

  /** At start-up: a job recorded as running was cut off by a restart. */
  async recoverInterrupted(): Promise<JobRecord | null> {
    const record = (await this.store.get(RECORD_KEY)) as JobRecord | undefined;
    if (record?.status !== 'running') return null;
    record.status = 'interrupted';
    record.finishedAt = new Date().toISOString();
    record.error = 'the bot restarted while this job ran; /model finetune starts it again and resumes from its last checkpoint';
    await this.store.set(RECORD_KEY, record);
    this.logger.warn({ job: record.id }, 'a fine-tuning job was interrupted by a restart');
    return record;
  }

  async last(): Promise<JobRecord | null> {
    return this.running?.record ?? ((await this.store.get(RECORD_KEY)) as JobRecord | undefined) ?? null;
  }

  get active(): JobRecord | null {
    return this.running?.record ?? null;
  }

  /** Starts a job; throws when one is running (its record says how far it is). */
  async start(faq: FaqStore, scope: string, requestedBy: string, overrides: Partial<JobSettings['fineTune']> = {}): Promise<{ record: JobRecord; done: Promise<JobRecord> }> {
    const busy = this.running?.record ?? this.starting;
    if (busy) throw new JobBusyError(busy);
    const record: JobRecord = { id: randomBytes(4).toString('hex'), scope, requestedBy, status: 'running', startedAt: new Date().toISOString() };
    this.starting = record;
    try {
      return await this.launch(record, faq, scope, overrides);
    } finally {
      this.starting = null;
    }
  }

  private async launch(record: JobRecord, faq: FaqStore, scope: string, overrides: Partial<JobSettings['fineTune']>): Promise<{ record: JobRecord; done: Promise<JobRecord> }> {
    const base = await this.registry.currentDir();
    if (!base) throw new ModelError('MODEL_NOT_FOUND', 'there is no live model to fine-tune; the bot creates one at its first start');
    const entries = await trainableEntries(faq);

    const config = await readConfig(base);
    const examples = faqTrainingExamples(entries, {
      instructions: this.settings.gate.instructions,
      passages: this.settings.gate.topK,
      noisyQuestions: this.settings.noisyQuestions,
      heldOutQuestions: this.settings.gate.heldOutQuestions,
      seed: overrides.seed ?? this.settings.fineTune.seed,
      promptBudget: promptBudget(config.n_positions),
      countTokens: (text) => this.tokenizer.encode(text).length,
      synonyms: await faq.synonyms(),
    });
    await this.store.set(RECORD_KEY, record);
    // The staging folder is named after the scope, so a restarted job finds its checkpoint beside it.
    const staging = join(this.registry.root, `.staging-${scope.replace(/[^\w-]/gu, '_')}`);
    // A model left there by a job cut off after training (a restart during its gate) would block this one.
    await rm(staging, { recursive: true, force: true });
    const job = startFineTune({ ...this.settings.fineTune, ...overrides, modelDir: base, outDir: staging }, examples, {
      logLevel: this.settings.logLevel,
      onProgress: (progress) => {
        record.progress = progress;
      },
    });
    const done = job.result
      .then(async (training) => {
        record.training = { steps: training.steps, finalTrainLoss: training.finalTrainLoss, validation: training.validation, seconds: training.seconds };
        const gate = await this.gate(faq, staging);
        record.gate = gate;
        record.version = await this.registry.nextVersion();
        await keepGateReport(staging, gate);
        await this.registry.publish(staging, record.version);
        await this.scorer.record({ version: record.version, faq: faq.scope, at: new Date().toISOString(), score: gate.candidate });
        if (record.gate.promote) {
          await this.rollout.goLive(record.version);
          record.status = 'promoted';
        } else {
          record.status = 'held';
        }
        return record;
      })
      .catch(async (error: unknown) => {
        record.status = error instanceof ModelError && error.code === 'CANCELLED' ? 'cancelled' : 'failed';
        record.error = error instanceof Error ? error.message : String(error);
        if (error instanceof CodedError) record.errorCode = error.code;
        if (record.status === 'failed') await rm(staging, { recursive: true, force: true });
        return record;
      })
      .then(async (finished) => {
        finished.finishedAt = new Date().toISOString();
        await this.store.set(RECORD_KEY, finished);
        this.running = null;
        this.metrics.fineTuneJobsFinished.inc({ status: finished.status });
        this.logger.info({ job: finished.id, status: finished.status, version: finished.version ?? null }, 'fine-tuning job finished');
        return finished;
      });
    this.running = { record, cancel: job.cancel, done };
    this.metrics.fineTuneJobsStarted.inc();
    return { record, done };
  }

  /** One job runs per process, whatever its scope. */
  async cancel(): Promise<boolean> {
    if (!this.running) return false;
    this.running.cancel();
    return true;
  }

  /** At shutdown: cancels the running job and waits for its end (the trainer checkpoints first). */
  async stop(): Promise<JobRecord | null> {
    const running = this.running;
    if (!running) return null;
    running.cancel();
    return running.done;
  }

  /** Scores the candidate and the live model (the one already serving) with the same questions. */
  private async gate(faq: FaqStore, candidateDir: string): Promise<GateReport> {
    const candidate = await this.scorer.scoreCandidate(faq, candidateDir, {
      executionProvider: this.settings.fineTune.executionProvider,
      weights: this.settings.servingWeights,
      logLevel: this.settings.logLevel,
    });
    const current = await this.scorer.scoreLive(faq);
    return gateDecision(candidate, current?.score ?? null, this.settings.gate.mode);
  }
}

/** training.json keeps the gate's figures beside the training's, for as long as the version lives. */
async function keepGateReport(modelDir: string, gate: GateReport): Promise<void> {
  const path = join(modelDir, 'training.json');
  const training = JSON.parse(await readFile(path, 'utf8')) as object;
  await writeFile(path, `${JSON.stringify({ ...training, gate }, null, 2)}\n`);
}

/** The FAQ's entries, refused when there is nothing to train on. */
export async function trainableEntries(faq: FaqStore): Promise<FaqEntry[]> {
  const entries = await faq.entries();
  if (entries.length === 0) throw new ModelError('DATA_INVALID', 'the FAQ is empty: add entries with /faq add or /faq import first');
  return entries;
}

/** Fine-tuning as the commands and the CLI see it fail: a job already running, a job that failed. */
export type FineTuneErrorCode = 'JOB_BUSY' | 'FINE_TUNE_FAILED';

export class FineTuneError extends CodedError<FineTuneErrorCode> {}

export class JobBusyError extends FineTuneError {
  constructor(readonly record: JobRecord) {
    super('JOB_BUSY', `a fine-tuning job is already running (started ${record.startedAt} by ${record.requestedBy}${record.progress ? `, step ${record.progress.step}/${record.progress.totalSteps}, loss ${record.progress.loss.toFixed(3)}` : ''}); /model cancel stops it`);
  }
}
