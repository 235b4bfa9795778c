import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../../log.js';
import { parameterCount } from '../config.js';
import { Gpt2Decoder } from './decoder.js';
import { ModelError, serializeModelError } from '../errors.js';
import { resolveGenerationOptions } from '../generation/options.js';
import { GenerationScheduler, type SubmittedRequest } from '../generation/scheduler.js';
import { buildGpt2Graph } from '../gpt2-graph.js';
import { readModelDir } from '../files/model-files.js';
import { encodeModel } from '../onnx/encode.js';
import { fitPrompt } from './prompt.js';
import { createModelSession } from './session.js';
import { loadTokenizer } from '../files/tokenizer.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker-protocol.js';

/**
 * The model's own thread: ONNX Runtime computes here, so the bot's event loop (heartbeats,
 * other users) never waits on a forward pass.
 */
if (!parentPort) throw new Error('model-worker.ts runs as a worker thread; load models with LanguageModel.load');
const port = parentPort;
const init = workerData as WorkerInit;
const logger = createLogger('model', init.logLevel);
const post = (message: FromWorker) => port.postMessage(message);

async function start(): Promise<void> {
  const started = performance.now();
  const files = await readModelDir(init.modelDir);
  const tokenizer = await loadTokenizer(init.modelDir, files.config.vocab_size);
  const graph = encodeModel(buildGpt2Graph(files.config, files.weights, 'runtime', { weights: init.weights }));
  files.weights.clear(); // ONNX Runtime holds its own copy now
  const session = await createModelSession(graph, {
    executionProvider: init.executionProvider,
    intraOpThreads: init.intraOpThreads,
    logger,
  });
  const scheduler = new GenerationScheduler(new Gpt2Decoder(session, files.config), tokenizer, init.maxBatchSize, logger, init.prefillChunkTokens);
  const requests = new Map<number, SubmittedRequest>();

  port.on('message', (message: ToWorker) => {
    switch (message.type) {
      case 'generate': {
        const { id } = message;
        try {
          const options = resolveGenerationOptions(message.options);
          const ids = typeof message.prompt === 'string' ? tokenizer.encode(message.prompt) : [...message.prompt];
          const badId = ids.find((token) => !Number.isInteger(token) || token < 0 || token >= files.config.vocab_size);
          if (badId !== undefined) {
            throw new ModelError('OPTIONS_INVALID', `prompt token ${badId} is outside the vocabulary [0, ${files.config.vocab_size})`);
          }
          const promptIds = fitPrompt(ids, options.maxNewTokens, files.config, logger);
          requests.set(
            id,
            scheduler.submit({
              promptIds,
              options,
              onText: (text) => post({ type: 'text', id, text }),
              onEnd: (result) => {
                requests.delete(id);
                post({ type: 'end', id, result });
              },
              onError: (error) => {
                requests.delete(id);
                post({ type: 'error', id, error: serializeModelError(error) });
              },
            }),
          );
        } catch (error) {
          post({ type: 'error', id, error: serializeModelError(error) });
        }
        break;
      }
      case 'cancel':
        requests.get(message.id)?.cancel();
        break;
      case 'close':
        for (const request of requests.values()) request.cancel();
        // A decode step may be running on the session: release it only once the loop has stopped.
        void scheduler
          .idle()
          .then(() => session.release())
          .finally(() => {
            post({ type: 'closed' });
            port.close();
          });
        break;
    }
  });

  post({
    type: 'ready',
    info: {
      modelDir: init.modelDir,
      provider: session.provider,
      config: files.config,
      parameters: parameterCount(files.config),
      loadMs: Math.round(performance.now() - started),
    },
  });
}

start().catch((error: unknown) => post({ type: 'failed', error: serializeModelError(error) }));
