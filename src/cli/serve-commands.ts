import type { Server } from 'node:http';
import { DiscordAdapter, discordAdapterOptions } from '../adapters/discord/discord-adapter.js';
import { LocalChatServer } from '../adapters/local/http-server.js';
import { TerminalChat } from '../adapters/local/terminal-chat.js';
import { type OpsEndpoints, Readiness, startOpsServer } from '../adapters/ops-server.js';
import { RedisSeenEvents } from '../adapters/slack/redis-seen-events.js';
import { SlackAdapter } from '../adapters/slack/slack-adapter.js';
import type { Adapter } from '../core/conversation/adapter.js';
import { type App, createApp, prepareFirstStart } from '../core/app.js';
import { loadConfig, type TunebotConfig } from '../core/config.js';
import type { JobRecord } from '../core/fine-tuning/fine-tune-jobs.js';
import { createLogger, type Logger } from '../log.js';
import { createProgressBar, type ProgressBar } from './progress.js';
import { type CliCommand, UsageError, parseCommandArgs, portOption } from './args.js';

/** The first start's fine-tune, drawn as a progress bar on stderr. */
export function firstStartProgress(): (job: JobRecord) => void {
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

/**
 * SIGTERM or SIGINT aborts the signal: the start command then shuts down gracefully. A second
 * one exits at once, for an operator who does not want to wait.
 */
export function shutdownSignal(logger: Logger): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      logger.warn({ signal: name }, 'a second signal during shutdown: exiting now');
      process.exit(1);
    }
    logger.info({ signal: name }, 'shutting down');
    controller.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}

/** Resolves once `signal` is aborted (at once when it already is): a server's life until shutdown. */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/**
 * The servers of `tunebot start`: the adapters (the local chat, with /healthz and /metrics when
 * ops.port is "chat"; Discord and Slack when configured), and the ops endpoints on their own
 * port when ops.port names one.
 */
async function serve(app: App, config: TunebotConfig, chatPort: number, signal: AbortSignal): Promise<void> {
  const { logger } = app.services;
  const ops: OpsEndpoints = { readiness: new Readiness(app.services.model), metrics: app.services.metrics };
  let opsServer: Server | null = null;
  try {
    if (typeof config.ops.port === 'number' && config.ops.port > 0) {
      const started = await startOpsServer(ops, { host: config.local.host, port: config.ops.port, logger });
      opsServer = started.server;
      process.stdout.write(`tunebot serves /healthz and /metrics at ${started.url}\n`);
    }
    // With the queue runner the worker makes the first start, once for the whole cluster.
    if (config.fineTune.runner === 'instance') await prepareFirstStart(app, config, logger, firstStartProgress(), signal);
    if (signal.aborted) return;
    const chat = new LocalChatServer(app.engine, {
      port: chatPort,
      host: config.local.host,
      logger,
      ops: config.ops.port === 'chat' ? ops : undefined,
      modelFigures: () => app.services.scorer.liveEvaluation(),
    });
    const adapters = await startAdapters([chat, ...platformAdapters(app, config)], logger);
    ops.readiness.serving();
    process.stdout.write(`tunebot is serving the local chat at ${chat.url}\n`);
    await untilAborted(signal);
    ops.readiness.stopping();
    await stopAdapters(adapters);
  } finally {
    ops.readiness.stopping();
    // The ops server answers 503 "shutting down" until the app has closed.
    await app.close();
    if (opsServer) {
      const server = opsServer;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}

/** Discord and Slack, each when its token is configured. */
function platformAdapters(app: App, config: TunebotConfig): Adapter[] {
  const { logger, feedback } = app.services;
  const adapters: Adapter[] = [];
  const discordOptions = discordAdapterOptions(config.discord, app.engine.commands, logger);
  if (discordOptions) adapters.push(new DiscordAdapter(app.engine, { ...discordOptions, feedback }));
  if (config.slack.botToken) {
    // With Redis, every instance skips the retries of an event another one answered.
    const { shared } = app.storage;
    const seenEvents = shared ? new RedisSeenEvents(shared.redis, shared.namespace) : undefined;
    adapters.push(new SlackAdapter(app.engine, { config: config.slack, logger, host: config.local.host, seenEvents, feedback }));
  }
  return adapters;
}

/** Starts `adapters` in order; when one cannot start, those already started are stopped before the error goes on. */
export async function startAdapters(adapters: readonly Adapter[], logger: Logger): Promise<Adapter[]> {
  const started: Adapter[] = [];
  try {
    for (const adapter of adapters) {
      await adapter.start();
      started.push(adapter);
      logger.info({ adapter: adapter.name }, 'adapter started');
    }
  } catch (error) {
    await stopAdapters(started);
    throw error;
  }
  return started;
}

/** Stops `adapters` together; each waits for its replies under way. */
export async function stopAdapters(adapters: readonly Adapter[]): Promise<void> {
  await Promise.all(adapters.map((adapter) => adapter.stop()));
}

export const startCommand: CliCommand = {
  words: ['start'],
  usage: 'tunebot start [--port N]',
  summary: 'serve the bot: the local web chat on 127.0.0.1, Discord and Slack when their tokens are set (first start: a model, the sample FAQ, a fine-tune); SIGTERM stops it gracefully',
  async run(args) {
    const { values, positionals } = parseCommandArgs(args, { port: { type: 'string' } });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const config = loadConfig();
    const port = portOption(values.port, config.local.port);
    const logger = createLogger('tunebot', config.log.level);
    const shutdown = shutdownSignal(logger);
    try {
      const app = await createApp(config, logger);
      await serve(app, config, port, shutdown.signal);
      logger.info('stopped');
    } finally {
      shutdown.dispose();
    }
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
      const chat = new TerminalChat(app.engine, process.stdin, process.stdout, { logger: app.services.logger });
      await chat.start();
      await chat.finished();
      await chat.stop();
    } finally {
      await app.close();
    }
  },
};
