import { startLocalServer } from '../adapters/local/http-server.js';
import { runTerminalChat } from '../adapters/local/terminal-chat.js';
import { type App, createApp, prepareFirstStart } from '../core/app.js';
import { loadConfig } from '../core/config.js';
import type { JobRecord } from '../core/fine-tune-jobs.js';
import { createLogger } from '../log.js';
import { createProgressBar, type ProgressBar } from '../model/progress.js';
import { type CliCommand, UsageError, parseCommandArgs } from './args.js';

/** The first start's fine-tune, drawn as a progress bar on stderr. */
function firstStartProgress(): (job: JobRecord) => void {
  let bar: ProgressBar | null = null;
  return (job) => {
    if (!job.progress) return;
    bar ??= createProgressBar('fine-tuning on the FAQ', job.progress.totalSteps, process.stderr, { unit: 'count' });
    bar.update(job.progress.step, `loss ${job.progress.loss.toFixed(3)}`);
    if (job.status !== 'running') bar.finish();
  };
}

async function startApp(): Promise<{ app: App; config: ReturnType<typeof loadConfig> }> {
  const config = loadConfig();
  const logger = createLogger('tunebot', config.log.level);
  const app = await createApp(config, logger);
  await prepareFirstStart(app, config, logger, firstStartProgress());
  return { app, config };
}

export const startCommand: CliCommand = {
  words: ['start'],
  usage: 'tunebot start [--port N]',
  summary: 'serve the bot: the local web chat on 127.0.0.1 (first start: a model, the sample FAQ, a fine-tune)',
  async run(args) {
    const { values, positionals } = parseCommandArgs(args, { port: { type: 'string' } });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const { app, config } = await startApp();
    const port = values.port !== undefined ? Number(values.port) : config.local.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0-65535, got "${values.port}"`);
    const { server, url } = await startLocalServer(app.engine, { port, logger: app.services.logger });
    process.stdout.write(`tunebot is serving the local chat at ${url}\n`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        app.services.logger.info('shutting down');
        server.close(() => resolve());
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    await app.close();
  },
};

export const chatCommand: CliCommand = {
  words: ['chat'],
  usage: 'tunebot chat',
  summary: 'chat in the terminal; reads one message per line from a pipe too',
  async run(args) {
    if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]}"`);
    const { app } = await startApp();
    try {
      await runTerminalChat(app.engine, process.stdin, process.stdout);
    } finally {
      await app.close();
    }
  },
};
