import { ModelError, type SerializedModelError } from '../errors.js';
import { startChildProcess } from '../runtime/child-process.js';
import type { Example } from './data.js';
import type { FineTuneSettings, TrainingProgress, TrainingRecord } from './trainer.js';

export type FineTuneToTrainer =
  | { readonly type: 'start'; readonly settings: FineTuneSettings; readonly examples: readonly Example[]; readonly logLevel: string }
  | { readonly type: 'cancel' };
export type FineTuneFromTrainer =
  | { readonly type: 'progress'; readonly progress: TrainingProgress }
  | { readonly type: 'warning'; readonly message: string }
  | { readonly type: 'done'; readonly record: TrainingRecord }
  | { readonly type: 'failed'; readonly error: SerializedModelError };

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

/**
 * The trainer process's environment (glibc's malloc). Every allocation comes from the heap
 * (mmap_max=0: glibc would otherwise map each block over 32 MB afresh, the logits-sized and
 * embedding-sized ones of every step among them, and in some runs the kernel faulted in about
 * 200 fresh huge pages a step, with 0.5 s of system CPU every other step); the heap keeps what
 * a step frees for the next instead of handing it back (trim_threshold); one arena serves every
 * thread (arena_max); and it is backed by transparent huge pages (hugetlb). At 124M, 4 x 64, a
 * full fine-tuning step then spends about 0% of its time in system CPU, where it spent 2-25%
 * (varying from run to run with what glibc kept). The price is a heap that fragments around
 * the logits-sized blocks: peaks of 2.8-3.0 GB at 4 x 64 (2.6-2.8 before) and 3.9-6.0 GB at
 * 4 x 256 (3.9-4.4), which the memory plan allows for. Other processes keep their defaults.
 */
export const TRAINER_ENV = { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184:glibc.malloc.arena_max=1' };

/** Runs fineTune in its own process (fine-tune-process.ts), reporting progress; see trainer.ts. */
export function startFineTune(settings: FineTuneSettings, examples: readonly Example[], listeners: FineTuneListeners = {}): FineTuneJob {
  const trainer = startChildProcess(import.meta.url, 'fine-tune-process', TRAINER_ENV);
  const send = (message: FineTuneToTrainer) => {
    if (trainer.connected) trainer.send(message);
  };
  send({ type: 'start', settings, examples, logLevel: listeners.logLevel ?? process.env.LOG_LEVEL ?? 'info' });
  let settled = false;
  const result = new Promise<TrainingRecord>((resolve, reject) => {
    trainer.on('message', (message: FineTuneFromTrainer) => {
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
    trainer.on('error', (error) => {
      settled = true;
      reject(new ModelError('WORKER_FAILED', `the trainer could not run: ${error.message}`, { cause: error }));
    });
    trainer.on('exit', (code, signal) => {
      if (settled) return;
      settled = true;
      if (signal === 'SIGKILL') {
        reject(new ModelError('OUT_OF_MEMORY', 'the trainer was killed (SIGKILL), most likely for lack of memory; use a smaller --batch with --accumulate, LoRA, or a shorter context'));
      } else {
        reject(new ModelError('WORKER_FAILED', `the trainer exited (${signal ?? `code ${code}`}) before it finished`));
      }
    });
  });
  return {
    result,
    cancel: () => send({ type: 'cancel' }),
  };
}
