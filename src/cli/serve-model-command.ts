import { startModelServer } from '../adapters/model-server/model-server.js';
import { SHUTDOWN_GRACE_MS } from '../adapters/ops-server.js';
import { configuredModelHost } from '../core/app.js';
import { loadConfig } from '../core/config.js';
import { BotMetrics } from '../core/metrics.js';
import { ModelRegistry } from '../core/serving/model-registry.js';
import { ModelRollout } from '../core/serving/model-rollout.js';
import { openStorage } from '../core/storage/open-storage.js';
import { createLogger } from '../log.js';
import { type CliCommand, UsageError, parseCommandArgs, portOption } from './args.js';
import { shutdownSignal, untilAborted } from './serve-commands.js';

/**
 * The model in a process of its own, on the machine with the GPU: bot instances whose config
 * model.server names this URL generate here and need no GPU. The registry's current version
 * is loaded at start; POST /v1/model swaps to another one while requests keep running.
 */
export const serveModelCommand: CliCommand = {
  words: ['serve-model'],
  usage: 'tunebot serve-model [--port N]',
  summary: 'serve the model over HTTP (at local.host, port modelServer.port) for bot instances whose model.server points here; SIGTERM stops it gracefully',
  async run(args) {
    const { values, positionals } = parseCommandArgs(args, { port: { type: 'string' } });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const config = loadConfig();
    const port = portOption(values.port, config.modelServer.port);
    const logger = createLogger('tunebot-model-server', config.log.level);
    const shutdown = shutdownSignal(logger);
    const registry = new ModelRegistry(config.model.dir);
    const metrics = new BotMetrics();
    const host = configuredModelHost(config, registry, logger, metrics);
    const storage = /^rediss?:/u.test(config.storage.url) ? await openStorage(config.storage.url, { logger, namespace: config.storage.namespace }) : null;
    const rollout = storage?.shared ? new ModelRollout(registry, host, storage.shared, logger) : null;
    try {
      const current = await registry.currentVersion();
      if (current) await host.swapTo(current);
      else process.stdout.write(`there is no model version in ${config.model.dir} yet: generate requests get 503 until one is swapped in with POST /v1/model\n`);
      // With Redis storage, the versions the cluster makes live load here too.
      await rollout?.follow();
      const server = await startModelServer(host, { host: config.local.host, port, logger, metrics, requireVersion: (version) => registry.requireVersion(version) });
      process.stdout.write(`tunebot serves the model${current ? ` (${current})` : ''} at ${server.url}\n`);
      await untilAborted(shutdown.signal);
      await server.close(SHUTDOWN_GRACE_MS);
      logger.info('stopped');
    } finally {
      await rollout?.close();
      await storage?.close();
      await host.close();
      shutdown.dispose();
    }
  },
};
