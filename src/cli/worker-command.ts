import { createApp, prepareFirstStart } from '../core/app.js';
import { ConfigError, loadConfig } from '../core/config.js';
import { FaqStore } from '../core/faq/faq-store.js';
import { startQueueWorker } from '../core/fine-tuning/fine-tune-queue-worker.js';
import { createLogger } from '../log.js';
import { type CliCommand, UsageError } from './args.js';
import { firstStartProgress, shutdownSignal, untilAborted } from './serve-commands.js';

export const workerCommand: CliCommand = {
  words: ['worker'],
  usage: 'tunebot worker',
  summary: 'run the fine-tune jobs that bot instances queue on the shared Redis (fineTune.runner "queue"), one at a time; SIGTERM checkpoints the running job and stops',
  async run(args) {
    if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]}"`);
    const config = loadConfig();
    const logger = createLogger('tunebot-worker', config.log.level);
    const shutdown = shutdownSignal(logger);
    try {
      const app = await createApp(config, logger, { trainHere: true });
      try {
        const { shared, documents } = app.storage;
        if (!shared) throw new ConfigError('tunebot worker takes its jobs from the queue on Redis: set storage.url (TUNEBOT_STORAGE_URL) to redis://host:port');
        // The cluster's first start (a model, the sample FAQ, a first fine-tune) happens here, once.
        await prepareFirstStart(app, config, logger, firstStartProgress(), shutdown.signal);
        if (shutdown.signal.aborted) return;
        const worker = await startQueueWorker({
          shared,
          jobs: app.services.jobs,
          faqOf: (faqScope) => FaqStore.forScope(documents, faqScope),
          lockMs: config.fineTune.workerLockSeconds * 1000,
          logger,
        });
        process.stdout.write(`tunebot worker is taking fine-tune jobs (namespace ${shared.namespace})\n`);
        await untilAborted(shutdown.signal);
        await worker.close();
      } finally {
        await app.close();
      }
      logger.info('stopped');
    } finally {
      shutdown.dispose();
    }
  },
};
