import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log.js';
import type { TextEmbedder } from '../model/embedding/sentence-embedder.js';
import { pullFromHub } from '../model/hub/hub.js';
import { importModel, initModel } from '../model/files/model-dir.js';
import { gpt2Tokenizer, loadTokenizer, type Tokenizer } from '../model/files/tokenizer.js';
import { DEFAULT_FINE_TUNE } from '../model/training/trainer.js';
import { allCommands } from './commands/all-commands.js';
import type { TunebotConfig } from './config.js';
import { ConversationEngine } from './conversation/engine.js';
import type { EngineSettings } from './conversation/engine-settings.js';
import { AnswerFeedback } from './conversation/feedback.js';
import { faqScopeKey, FaqStore } from './faq/faq-store.js';
import { parseFaqDocument } from './faq/formats.js';
import { FineTuneError, FineTuneJobs, type FineTunes, type JobRecord } from './fine-tuning/fine-tune-jobs.js';
import { QueuedFineTunes } from './fine-tuning/fine-tune-queue.js';
import { Inbox } from './conversation/inbox.js';
import { ConversationMemory } from './conversation/memory.js';
import type { IncomingMessage } from './conversation/message.js';
import { BotMetrics } from './metrics.js';
import type { LiveModel } from './serving/live-model.js';
import { ModelHost } from './serving/model-host.js';
import { ModelRegistry } from './serving/model-registry.js';
import { ModelRollout } from './serving/model-rollout.js';
import { ModelScorer } from './fine-tuning/model-scorer.js';
import { RemoteModel } from './serving/remote-model.js';
import { HybridRetriever } from './retrieval/hybrid-retriever.js';
import { openRetrieval } from './retrieval/open-retrieval.js';
import type { EngineServices } from './services.js';
import { openStorage, type Storage } from './storage/open-storage.js';

/**
 * Builds the engine and everything it uses from the configuration: storage, FAQ, memory, the
 * model registry and the live model. Adapters receive the engine; nothing here knows them.
 */
export interface App {
  readonly engine: ConversationEngine;
  readonly services: EngineServices;
  readonly storage: Storage;
  /** BM25 + dense retrieval when retrieval.embeddingModel names a model folder; null is BM25 alone. */
  readonly retriever: HybridRetriever | null;
  close(): Promise<void>;
}

export const SAMPLE_FAQ = fileURLToPath(new URL('../../config/sample-faq.md', import.meta.url));

export interface AppOptions {
  /** Train in this process even when config sends fine-tunes to the queue: `tunebot worker`. */
  readonly trainHere?: boolean;
  /**
   * Hybrid retrieval on this embedder whatever retrieval.embeddingModel says: bench:answers
   * measures encoders the bot does not ship. The app closes it.
   */
  readonly embedder?: TextEmbedder;
}

export async function createApp(config: TunebotConfig, logger: Logger, options: AppOptions = {}): Promise<App> {
  const retriever = options.embedder ? new HybridRetriever(options.embedder, { logger }) : await openRetrieval(config, logger);
  const storage = await openStorage(config.storage.url, { logger, namespace: config.storage.namespace });
  const registry = new ModelRegistry(config.model.dir);
  const metrics = new BotMetrics();
  const model: LiveModel = config.model.server
    ? await RemoteModel.connect(config.model.server, { metrics })
    : configuredModelHost(config, registry, logger, metrics);
  const rollout = new ModelRollout(registry, model, storage.shared, logger);
  const memory = new ConversationMemory(storage.turns, { ttlMs: config.engine.memory.ttlHours * 3_600_000, maxStoredTurns: 200 });
  const tokenizer = await tokenizerFor(registry);
  const scopeKeyOf = (platform: string, workspace: string) => faqScopeKey(config.faq.scope, platform, workspace);
  const scopeOf = (message: Pick<IncomingMessage, 'platform' | 'scope'>) => scopeKeyOf(message.platform, message.scope.workspace);
  const faqStores = new Map<string, FaqStore>();
  const inboxes = new Map<string, Inbox>();
  const inboxOf = (key: string) => {
    let inbox = inboxes.get(key);
    if (!inbox) inboxes.set(key, (inbox = new Inbox(storage.documents, key)));
    return inbox;
  };
  const settings: EngineSettings = {
    ...config.engine,
    generation: config.generation,
  };
  const gate = { ...config.engine, mode: config.fineTune.gate, heldOutQuestions: config.fineTune.heldOutQuestions };
  const jobs: FineTunes =
    config.fineTune.runner === 'queue' && !options.trainHere
      ? new QueuedFineTunes(requireShared(storage.shared), logger)
      : new FineTuneJobs(
          storage.documents,
          registry,
          model,
          tokenizer,
          {
            fineTune: {
              ...DEFAULT_FINE_TUNE,
              epochs: config.fineTune.epochs,
              learningRate: config.fineTune.learningRate,
              batchSize: config.fineTune.batchSize,
              accumulate: config.fineTune.accumulate,
              checkpointEvery: config.fineTune.checkpointEvery,
              validationFraction: 0,
              earlyStopPatience: 0,
              lora: config.fineTune.lora > 0 ? { rank: config.fineTune.lora, alpha: 2 * config.fineTune.lora } : undefined,
              executionProvider: config.model.executionProvider,
            },
            gate,
            noisyQuestions: config.fineTune.noisyQuestions,
            logLevel: config.log.level,
            servingWeights: config.model.weights,
          },
          logger,
          metrics,
          rollout,
        );
  const services: EngineServices = {
    settings,
    faqFor: (message) => {
      const key = scopeOf(message);
      let store = faqStores.get(key);
      if (!store) faqStores.set(key, (store = FaqStore.forScope(storage.documents, key, { retriever })));
      return store;
    },
    inboxFor: (message) => inboxOf(scopeOf(message)),
    feedback: new AnswerFeedback(storage.documents, { scopeKeyOf, inboxOf }, metrics),
    memory,
    model,
    registry,
    rollout,
    jobs,
    scorer: new ModelScorer(model, tokenizer, gate, storage.documents),
    tokenizer,
    logger,
    metrics,
  };
  await jobs.recoverInterrupted();
  // A model server may already serve the live version; a fresh ModelHost serves none.
  const live = await registry.currentVersion();
  if (live && model.version !== live) await model.swapTo(live);
  await rollout.follow();
  const engine: ConversationEngine = new ConversationEngine(services, allCommands((message) => engine.handle(message)));
  return {
    engine,
    services,
    storage,
    retriever,
    /** A running fine-tune is cancelled first: its trainer checkpoints, and its record needs the storage. */
    async close() {
      await rollout.close();
      await jobs.stop();
      await model.close();
      await retriever?.close();
      await storage.close();
    },
  };
}

/** The registry's versions loaded in this process, as config.model says (`tunebot start`, `tunebot serve-model`). */
export function configuredModelHost(config: TunebotConfig, registry: ModelRegistry, logger: Logger, metrics: BotMetrics): ModelHost {
  const { executionProvider, intraOpThreads, weights, maxBatchSize } = config.model;
  return new ModelHost((version) => registry.dirOf(version), { executionProvider, intraOpThreads, weights, maxBatchSize, logLevel: config.log.level }, logger, metrics);
}

function requireShared<T>(shared: T | null): T {
  // The config schema already refuses the queue runner without Redis storage.
  if (!shared) throw new Error('the fine-tune queue needs Redis storage (storage.url redis://...)');
  return shared;
}

/** Every version shares GPT-2's tokenizer; a fresh install has no model folder to read it from. */
async function tokenizerFor(registry: ModelRegistry): Promise<Tokenizer> {
  const dir = await registry.currentDir();
  return dir ? loadTokenizer(dir) : gpt2Tokenizer();
}

/** Settings that help when the first fine-tune fails with these codes. */
const FIRST_FINE_TUNE_REMEDIES: Readonly<Record<string, string>> = {
  TRAINING_DIVERGED: 'lower fineTune.learningRate (TUNEBOT_FINE_TUNE_LEARNING_RATE)',
  OUT_OF_MEMORY: 'lower fineTune.batchSize (TUNEBOT_FINE_TUNE_BATCH_SIZE) and raise fineTune.accumulate (TUNEBOT_FINE_TUNE_ACCUMULATE) as the message says, or train with LoRA (TUNEBOT_FINE_TUNE_LORA=8)',
};

function firstFineTuneFailure(job: JobRecord): FineTuneError {
  const remedy = (job.errorCode && FIRST_FINE_TUNE_REMEDIES[job.errorCode]) ?? 'fix what it names';
  const cause = job.errorCode ? `${job.errorCode}: ${job.error}` : job.error;
  return new FineTuneError('FINE_TUNE_FAILED', `the first fine-tune failed (${cause}); ${remedy} and start again: the model and the FAQ are kept`);
}

/**
 * The first start, offline: a new model (or a pulled one, when config names it), the sample
 * FAQ when the FAQ is empty, and a fine-tune on it, so that `npm start` serves a bot that
 * knows something. Each step is skipped when already done. An abort (a shutdown) skips the
 * steps still to come and cancels the fine-tune; the next start picks up from there.
 */
export async function prepareFirstStart(
  app: App,
  config: TunebotConfig,
  logger: Logger,
  onProgress: (job: JobRecord) => void,
  signal?: AbortSignal,
): Promise<void> {
  const { registry } = app.services;
  if (signal?.aborted) return;
  if (!(await registry.currentVersion())) {
    const version = await registry.nextVersion();
    const staging = join(config.model.dir, `.new-${version}`);
    await rm(staging, { recursive: true, force: true });
    if (config.model.pull) {
      logger.info({ repo: config.model.pull }, 'first start: pulling the model from the hub');
      const download = `${staging}.download`;
      await pullFromHub({ repo: config.model.pull, outDir: download, endpoint: config.hub.endpoint });
      await importModel(download, staging, 'safetensors');
      await rm(download, { recursive: true, force: true });
    } else {
      logger.info({ preset: config.model.preset }, 'first start: creating a new model');
      await initModel(staging, config.model.preset, 0);
    }
    await registry.publish(staging, version);
    await app.services.rollout.goLive(version);
  }
  const local: IncomingMessage = { platform: 'local', scope: { workspace: 'local', channel: 'start' }, user: { id: 'local', displayName: 'local' }, text: '', attachments: [], platformAdmin: true };
  const faq = app.services.faqFor(local);
  if ((await faq.entries()).length === 0) {
    const { records, synonyms } = parseFaqDocument(new Uint8Array(await readFile(SAMPLE_FAQ)), 'markdown');
    await faq.applyImport(records, 'merge', { synonyms });
    logger.info({ entries: records.length }, 'first start: imported the sample FAQ');
  }
  const versions = await registry.versions();
  if (versions.every((version) => version.training === null) && !signal?.aborted) {
    logger.info('first start: fine-tuning the model on the FAQ');
    const { record, done } = await app.services.jobs.start(faq, 'local:local', 'local:first-start');
    const timer = setInterval(() => onProgress(record), 250);
    const cancel = () => void app.services.jobs.cancel('local:local');
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      const finished = await done;
      onProgress(finished);
      if (finished.status === 'failed') throw firstFineTuneFailure(finished);
    } finally {
      clearInterval(timer);
      signal?.removeEventListener('abort', cancel);
    }
  }
}
