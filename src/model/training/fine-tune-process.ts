import { createLogger } from '../../log.js';
import { serializeModelError } from '../errors.js';
import type { FineTuneFromTrainer, FineTuneToTrainer } from './fine-tune-job.js';
import { fineTune } from './trainer.js';

/**
 * Fine-tuning's own process (startFineTune starts it): the caller's event loop stays free
 * while ONNX Runtime trains, the gigabytes a run needs go back to the system when it ends,
 * and a trainer killed for memory takes nothing else down.
 */
const send = process.send?.bind(process);
if (!send) throw new Error('fine-tune-process.ts runs as a child process; use startFineTune');
const post = (message: FineTuneFromTrainer) => send(message);
const abort = new AbortController();

process.on('message', (message: FineTuneToTrainer) => {
  if (message.type === 'cancel') abort.abort();
  if (message.type !== 'start') return;
  const { settings, examples, logLevel } = message;
  fineTune(settings, examples, {
    logger: createLogger('trainer', logLevel),
    signal: abort.signal,
    onProgress: (progress) => post({ type: 'progress', progress }),
    onWarning: (warning) => post({ type: 'warning', message: warning }),
  })
    .then((record) => post({ type: 'done', record }))
    .catch((error: unknown) => post({ type: 'failed', error: serializeModelError(error) }))
    .finally(() => process.disconnect());
});
// The caller is gone: stop at the next step, with a checkpoint, rather than train for no one.
process.on('disconnect', () => abort.abort());
// Ctrl-C reaches the whole process group, this process too: like the caller's cancel, it stops
// training at the next step with a checkpoint, where the default would drop the steps since the last.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => abort.abort());
