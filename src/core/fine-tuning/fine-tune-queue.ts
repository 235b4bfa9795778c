import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Job, Queue } from 'bullmq';
import type { Logger } from '../../log.js';
import type { TrainingProgress } from '../../model/training/trainer.js';
import type { FaqStore } from '../faq/faq-store.js';
import { type FineTunes, JobBusyError, type JobRecord, type JobSettings, trainableEntries } from './fine-tune-jobs.js';
import type { SharedRedis } from '../storage/open-storage.js';
import type { RedisClient } from '../storage/redis-turn-log.js';

/**
 * Fine-tuning through a BullMQ queue on the shared Redis (config fineTune.runner "queue"):
 * the instance that takes /model finetune adds a job and relays its progress; a `tunebot
 * worker` process (fine-tune-queue-worker.ts) trains. BullMQ's own job states are the
 * record, so every instance sees the same job whichever one started it.
 */
export const FINE_TUNE_QUEUE = 'fine-tune';

export interface FineTuneJobData {
  /** Jobs of one scope never run at once. */
  readonly scope: string;
  /** The FAQ to train on: its FaqStore scope key. */
  readonly faqScope: string;
  readonly requestedBy: string;
  readonly overrides: Partial<JobSettings['fineTune']>;
}

/** Where BullMQ keeps the queue, and the channel on which a cancel reaches the worker. */
export function queueConnection(shared: SharedRedis): { connection: RedisClient; prefix: string } {
  return { connection: shared.redis, prefix: `${shared.namespace}:queue` };
}

export function cancelChannel(shared: SharedRedis): string {
  return `${shared.namespace}:fine-tune-cancel`;
}

/** A job's failure as an admin reads it. BullMQ fails a job whose worker stopped renewing its lock as "stalled". */
export function describeFailure(reason: string | undefined): string {
  if (reason && /stalled/u.test(reason)) {
    return 'the worker running this job stopped mid-job (killed, or lost its connection); its last checkpoint is kept and /model finetune resumes from it';
  }
  return reason || 'the job failed without a reason';
}

const UNFINISHED = ['active', 'waiting', 'delayed', 'prioritized', 'waiting-children'] as const;
const POLL_MS = 500;
/** Only held across a check and an add: milliseconds. */
const START_LOCK_MS = 10_000;

export class QueuedFineTunes implements FineTunes {
  private readonly queue: Queue<FineTuneJobData, JobRecord>;
  private readonly watchers = new Set<{ stop: AbortController; watching: Promise<JobRecord> }>();

  constructor(
    private readonly shared: SharedRedis,
    private readonly logger: Logger,
  ) {
    this.queue = new Queue(FINE_TUNE_QUEUE, queueConnection(shared));
    this.queue.on('error', (error: Error) => logger.warn({ err: error }, 'fine-tune queue: Redis error'));
  }

  async start(faq: FaqStore, scope: string, requestedBy: string, overrides: Partial<JobSettings['fineTune']> = {}): Promise<{ record: JobRecord; done: Promise<JobRecord> }> {
    // Refused here rather than by the worker, so the admin hears it at once.
    await trainableEntries(faq);
    const job = await this.withStartLock(scope, async () => {
      const busy = await this.unfinishedJob(scope);
      if (busy) throw new JobBusyError(await recordOf(busy));
      return this.queue.add('finetune', { scope, faqScope: faq.scope, requestedBy, overrides }, { jobId: newJobId(), removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } });
    });
    const record = await recordOf(job);
    this.logger.info({ job: record.id, scope }, 'fine-tuning job queued');
    return { record, done: this.watch(record.id, record) };
  }

  /** A job still waiting is removed; a running one is told to stop (its worker checkpoints). */
  async cancel(scope: string): Promise<boolean> {
    const job = await this.unfinishedJob(scope);
    if (!job) return false;
    if ((await job.getState()) === 'active') await this.shared.redis.publish(cancelChannel(this.shared), idOf(job));
    else await job.remove();
    return true;
  }

  async last(): Promise<JobRecord | null> {
    const recent = (await this.queue.getJobs([...UNFINISHED, 'completed', 'failed'], 0, 10)) as Job<FineTuneJobData, JobRecord>[];
    const newest = recent.filter(Boolean).sort((a, b) => b.timestamp - a.timestamp)[0];
    return newest ? recordOf(newest) : null;
  }

  /** The queue keeps its jobs across restarts, and a worker's stall check fails the jobs of a worker that died. */
  async recoverInterrupted(): Promise<null> {
    return null;
  }

  /** The jobs go on in their worker; this instance only stops watching them. */
  async stop(): Promise<null> {
    const watchers = [...this.watchers];
    for (const watcher of watchers) watcher.stop.abort();
    // A poll in flight finishes before the queue's connection goes.
    await Promise.allSettled(watchers.map((watcher) => watcher.watching));
    await this.queue.close();
    return null;
  }

  private async unfinishedJob(scope: string): Promise<Job<FineTuneJobData, JobRecord> | undefined> {
    const jobs = (await this.queue.getJobs([...UNFINISHED])) as Job<FineTuneJobData, JobRecord>[];
    return jobs.find((job) => job?.data.scope === scope);
  }

  /** Two instances taking /model finetune for one scope at the same moment: one check-and-add at a time. */
  private async withStartLock<T>(scope: string, body: () => Promise<T>): Promise<T> {
    const key = `${this.shared.namespace}:fine-tune-start:${scope}`;
    const token = randomBytes(8).toString('hex');
    while ((await this.shared.redis.set(key, token, { NX: true, PX: START_LOCK_MS })) === null) await sleep(50);
    try {
      return await body();
    } finally {
      await this.shared.redis.eval(RELEASE_LOCK, { keys: [key], arguments: [token] });
    }
  }

  /**
   * Keeps `record` up to date from the queue until the job ends; resolves with its last state,
   * or with the state it had when this instance stopped watching (stop()).
   */
  private watch(jobId: string, record: JobRecord): Promise<JobRecord> {
    const stop = new AbortController();
    const poll = async (): Promise<JobRecord> => {
      while (!stop.signal.aborted) {
        await sleep(POLL_MS, undefined, { signal: stop.signal }).catch(() => undefined);
        if (stop.signal.aborted) break;
        const job = (await this.queue.getJob(jobId)) as Job<FineTuneJobData, JobRecord> | undefined;
        if (!job) return Object.assign(record, { status: 'cancelled', finishedAt: new Date().toISOString(), error: 'the job was removed from the queue before it ran' });
        Object.assign(record, await recordOf(job));
        if (!['queued', 'running'].includes(record.status)) return record;
      }
      return record;
    };
    const watching = poll();
    const watcher = { stop, watching };
    this.watchers.add(watcher);
    void watching.finally(() => this.watchers.delete(watcher)).catch(() => undefined);
    return watching;
  }
}

const RELEASE_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

async function recordOf(job: Job<FineTuneJobData, JobRecord>): Promise<JobRecord> {
  const base = { id: idOf(job), scope: job.data.scope, requestedBy: job.data.requestedBy, startedAt: new Date(job.timestamp).toISOString() };
  const finishedAt = job.finishedOn ? new Date(job.finishedOn).toISOString() : undefined;
  switch (await job.getState()) {
    case 'completed':
      return { ...job.returnvalue, ...base };
    case 'failed':
      return { ...base, status: 'failed', finishedAt, error: describeFailure(job.failedReason) };
    case 'active':
      return { ...base, status: 'running', progress: isProgress(job.progress) ? job.progress : undefined };
    default:
      return { ...base, status: 'queued' };
  }
}

/** BullMQ refuses a custom id made only of digits, which random hex sometimes is. */
export function newJobId(): string {
  return `ft-${randomBytes(4).toString('hex')}`;
}

/** Every job this queue adds has an id (jobId is given); BullMQ's type leaves it optional. */
export function idOf(job: Job): string {
  if (job.id === undefined) throw new Error('a fine-tune job without an id');
  return job.id;
}

function isProgress(value: unknown): value is TrainingProgress {
  return typeof value === 'object' && value !== null && typeof (value as TrainingProgress).step === 'number';
}
