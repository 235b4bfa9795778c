import { ModelError, type ModelErrorCode } from '../errors.js';
import { startWorkerThread } from '../runtime/worker-thread.js';
import type { Example } from './data.js';
import type { FineTuneSettings, TrainingProgress, TrainingRecord } from './trainer.js';

export type FineTuneToWorker = { readonly type: 'cancel' };
export type FineTuneFromWorker =
  | { readonly type: 'progress'; readonly progress: TrainingProgress }
  | { readonly type: 'warning'; readonly message: string }
  | { readonly type: 'done'; readonly record: TrainingRecord }
  | { readonly type: 'failed'; readonly error: { readonly code: ModelErrorCode; readonly message: string } };

export interface FineTuneJob {
  /** Settles with training.json's record, or rejects (CANCELLED after cancel()). */
  readonly result: Promise<TrainingRecord>;
  /** Asks the trainer to stop at the next step boundary (it checkpoints first). */
  cancel(): void;
}

export interface FineTuneListeners {
  readonly onProgress?: (progress: TrainingProgress) => void;
  readonly onWarning?: (message: string) => void;
  readonly logLevel?: string;
}

/** Runs fineTune in a worker thread, reporting progress; see trainer.ts. */
export function startFineTune(settings: FineTuneSettings, examples: readonly Example[], listeners: FineTuneListeners = {}): FineTuneJob {
  const worker = startWorkerThread(import.meta.url, 'fine-tune-worker', { settings, examples, logLevel: listeners.logLevel ?? process.env.LOG_LEVEL ?? 'info' });
  let settled = false;
  const result = new Promise<TrainingRecord>((resolve, reject) => {
    worker.on('message', (message: FineTuneFromWorker) => {
      switch (message.type) {
        case 'progress':
          listeners.onProgress?.(message.progress);
          break;
        case 'warning':
          listeners.onWarning?.(message.message);
          break;
        case 'done':
          settled = true;
          resolve(message.record);
          break;
        case 'failed':
          settled = true;
          reject(new ModelError(message.error.code, message.error.message));
          break;
      }
    });
    worker.on('error', (error) => {
      settled = true;
      reject(new ModelError('WORKER_FAILED', `the trainer crashed: ${error.message}`, { cause: error }));
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new ModelError('WORKER_FAILED', `the trainer exited (code ${code}) before it finished`));
    });
  });
  return {
    result,
    cancel: () => worker.postMessage({ type: 'cancel' } satisfies FineTuneToWorker),
  };
}
