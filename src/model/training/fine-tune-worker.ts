import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../../log.js';
import { ModelError } from '../errors.js';
import type { Example } from './data.js';
import { type FineTuneSettings, fineTune } from './trainer.js';
import type { FineTuneFromWorker, FineTuneToWorker } from './fine-tune-job.js';

/** Fine-tuning's own thread: the caller's event loop stays free while ONNX Runtime trains. */
if (!parentPort) throw new Error('fine-tune-worker.ts runs as a worker thread; use startFineTune');
const port = parentPort;
const { settings, examples, logLevel } = workerData as { settings: FineTuneSettings; examples: Example[]; logLevel: string };
const abort = new AbortController();
const post = (message: FineTuneFromWorker) => port.postMessage(message);

port.on('message', (message: FineTuneToWorker) => {
  if (message.type === 'cancel') abort.abort();
});

fineTune(settings, examples, {
  logger: createLogger('trainer', logLevel),
  signal: abort.signal,
  onProgress: (progress) => post({ type: 'progress', progress }),
  onWarning: (message) => post({ type: 'warning', message }),
})
  .then((record) => post({ type: 'done', record }))
  .catch((error: unknown) =>
    post({
      type: 'failed',
      error: error instanceof ModelError ? { code: error.code, message: error.message } : { code: 'WORKER_FAILED', message: error instanceof Error ? error.message : String(error) },
    }),
  )
  .finally(() => port.close());
