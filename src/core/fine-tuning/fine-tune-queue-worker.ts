import { type Job, Worker } from 'bullmq';
import type { Logger } from '../../log.js';
import type { FaqStore } from '../faq/faq-store.js';
import { FineTuneError, type FineTunes, type JobRecord } from './fine-tune-jobs.js';
import { cancelChannel, FINE_TUNE_QUEUE, type FineTuneJobData, idOf, queueConnection } from './fine-tune-queue.js';
import type { SharedRedis } from '../storage/open-storage.js';
import type { RedisClient } from '../storage/redis-turn-log.js';

export interface QueueWorkerOptions {
  readonly shared: SharedRedis;
  /** This process's trainer: FineTuneJobs, which trains, gates, publishes and rolls out. */
  readonly jobs: FineTunes;
  readonly faqOf: (faqScope: string) => FaqStore;
  /**
   * How long a job stays locked to a worker that stopped answering: after that the next stall
   * check (by any worker) fails it, and its checkpoint waits for a retry.
   */
  readonly lockMs: number;
  readonly logger: Logger;
}

export interface QueueWorker {
  /** Stops taking jobs; a running job stops at its next step with a checkpoint, and ends cancelled: /model finetune resumes it. */
  close(): Promise<void>;
}

const PROGRESS_EVERY_MS = 500;

/** `tunebot worker`: takes fine-tune jobs from the queue one at a time and reports their progress through it. */
export async function startQueueWorker(options: QueueWorkerOptions): Promise<QueueWorker> {
  const { shared, jobs, logger } = options;
  let running: { jobId: string; scope: string } | null = null;

  const cancels: RedisClient = shared.redis.duplicate();
  cancels.on('error', (error: Error) => logger.warn({ err: error }, 'fine-tune worker: Redis error on the cancel channel'));
  await cancels.connect();
  await cancels.subscribe(cancelChannel(shared), (jobId) => {
    if (running?.jobId !== jobId) return;
    logger.info({ job: jobId }, 'cancel requested');
    void jobs.cancel(running.scope);
  });

  const process = async (job: Job<FineTuneJobData, JobRecord>): Promise<JobRecord> => {
    const { scope, faqScope, requestedBy, overrides } = job.data;
    logger.info({ job: job.id, scope }, 'fine-tuning job taken from the queue');
    const { record, done } = await jobs.start(options.faqOf(faqScope), scope, requestedBy, overrides);
    running = { jobId: idOf(job), scope };
    const timer = setInterval(() => {
      if (record.progress) job.updateProgress({ ...record.progress }).catch((error: unknown) => logger.warn({ err: error }, 'could not report progress'));
    }, PROGRESS_EVERY_MS);
    try {
      const finished = await done;
      if (finished.status === 'failed') throw new FineTuneError('FINE_TUNE_FAILED', finished.error ?? 'fine-tuning failed');
      return finished;
    } finally {
      clearInterval(timer);
      running = null;
    }
  };

  const worker = new Worker<FineTuneJobData, JobRecord>(FINE_TUNE_QUEUE, process, {
    ...queueConnection(shared),
    concurrency: 1,
    lockDuration: options.lockMs,
    stalledInterval: options.lockMs,
    // A job whose worker died is failed, not run again from the start: a retry resumes its checkpoint.
    maxStalledCount: 0,
  });
  worker.on('error', (error: Error) => logger.warn({ err: error }, 'fine-tune worker: queue error'));
  worker.on('failed', (job, error) => logger.warn({ job: job?.id, err: error }, 'fine-tuning job failed'));
  await worker.waitUntilReady();

  return {
    async close() {
      await jobs.stop();
      await worker.close();
      if (cancels.isOpen) await cancels.close();
    },
  };
}
