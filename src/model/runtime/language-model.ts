import type { Worker } from 'node:worker_threads';
import { ModelError, type SerializedModelError } from '../errors.js';
import { startWorkerThread } from './worker-thread.js';
import type { GenerationOptions } from '../generation/options.js';
import { PieceQueue } from '../generation/piece-queue.js';
import { type WeightType, parseWeightType } from '../quantize.js';
import { DEFAULT_PREFILL_CHUNK_TOKENS, type GenerationResult } from '../generation/scheduler.js';
import type { ExecutionProviderChoice } from './session.js';
import type { FromWorker, ModelInfo, ToWorker, WorkerInit } from './worker-protocol.js';

export interface LoadOptions {
  readonly executionProvider?: ExecutionProviderChoice;
  /** Threads for one operator; 0 lets ONNX Runtime use every core. */
  readonly intraOpThreads?: number;
  /** The projections' and head's weights as the model runs: float32 (default), or block-quantized int8 / int4 (quantize.ts). */
  readonly weights?: WeightType;
  /** Requests decoded together in one step at most; more wait their turn. */
  readonly maxBatchSize?: number;
  /** Prompt tokens prefilled per scheduler iteration, across the joining requests (scheduler.ts); smaller keeps running requests streaming more evenly while a long prompt goes in. */
  readonly prefillChunkTokens?: number;
  readonly logLevel?: string;
}

export interface GenerateOptions extends GenerationOptions {
  readonly signal?: AbortSignal;
}

/** Generated text, piece by piece (whole characters only); `result` settles when it ends. */
export interface GenerationStream extends AsyncIterable<string> {
  readonly result: Promise<GenerationResult>;
}

interface PendingRequest {
  readonly pieces: PieceQueue;
  settle: (result: GenerationResult) => void;
  fail: (error: ModelError) => void;
}

/**
 * A GPT-2 model running in its own worker thread. `generate` streams text; concurrent calls
 * are batched by the worker's scheduler.
 */
export class LanguageModel {
  private readonly pending = new Map<number, PendingRequest>();
  private nextId = 1;
  private closed: Promise<void> | null = null;
  private failure: ModelError | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
  ) {
    worker.on('message', (message: FromWorker) => this.receive(message));
    worker.on('error', (error) => this.failAll(new ModelError('WORKER_FAILED', `the model worker crashed: ${error.message}`, { cause: error })));
    worker.on('exit', (code) => {
      if (!this.closed) this.failAll(new ModelError('WORKER_FAILED', `the model worker exited (code ${code})`));
    });
  }

  static async load(modelDir: string, options: LoadOptions = {}): Promise<LanguageModel> {
    const init: WorkerInit = {
      modelDir,
      executionProvider: options.executionProvider ?? 'auto',
      intraOpThreads: options.intraOpThreads ?? 0,
      weights: parseWeightType(options.weights ?? 'float32'),
      maxBatchSize: options.maxBatchSize ?? 16,
      prefillChunkTokens: options.prefillChunkTokens ?? DEFAULT_PREFILL_CHUNK_TOKENS,
      logLevel: options.logLevel ?? process.env.LOG_LEVEL ?? 'info',
    };
    const worker = startWorkerThread(import.meta.url, 'model-worker', init);
    const info = await new Promise<ModelInfo>((resolve, reject) => {
      const onMessage = (message: FromWorker) => {
        if (message.type === 'ready') resolve(message.info);
        if (message.type === 'failed') reject(deserialize(message.error));
      };
      worker.once('message', onMessage);
      worker.once('error', (error) => reject(new ModelError('WORKER_FAILED', `the model worker failed to start: ${error.message}`, { cause: error })));
    }).catch(async (error: unknown) => {
      await worker.terminate();
      throw error;
    });
    return new LanguageModel(worker, info);
  }

  generate(prompt: string | readonly number[], options: GenerateOptions = {}): GenerationStream {
    const { signal, ...generation } = options;
    const id = this.nextId++;
    let settle!: (result: GenerationResult) => void;
    let fail!: (error: ModelError) => void;
    const result = new Promise<GenerationResult>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    // Callers that only iterate never look at `result`; its rejection is theirs through the iterator.
    result.catch(() => undefined);
    const request: PendingRequest = { pieces: new PieceQueue(), settle, fail };

    const finishWith = (error: ModelError) => {
      if (request.pieces.ended) return;
      request.pieces.fail(error);
      request.fail(error);
    };
    if (this.failure || this.closed) {
      finishWith(this.failure ?? new ModelError('WORKER_FAILED', 'the model is closed'));
    } else if (signal?.aborted) {
      finishWith(new ModelError('ABORTED', 'generation was cancelled before it started'));
    } else {
      this.pending.set(id, request);
      this.send({ type: 'generate', id, prompt, options: generation });
      signal?.addEventListener('abort', () => this.cancel(id, finishWith), { once: true });
    }

    const cancel = () => this.cancel(id, finishWith);
    return {
      result,
      async *[Symbol.asyncIterator]() {
        try {
          yield* request.pieces.drain();
        } finally {
          // A reader that stops early (a client gone) does not want the rest: the worker stops generating it.
          if (!request.pieces.ended) cancel();
        }
      },
    };
  }

  /** Stops request `id` in the worker, when it still runs there, and ends its stream with ABORTED. */
  private cancel(id: number, finishWith: (error: ModelError) => void): void {
    if (!this.pending.has(id)) return;
    this.pending.delete(id);
    this.send({ type: 'cancel', id });
    finishWith(new ModelError('ABORTED', 'generation was cancelled'));
  }

  /** Generates to the end and returns the whole text. */
  async complete(prompt: string | readonly number[], options: GenerateOptions = {}): Promise<{ text: string; result: GenerationResult }> {
    const stream = this.generate(prompt, options);
    let text = '';
    for await (const piece of stream) text += piece;
    return { text, result: await stream.result };
  }

  /** Stops the worker; requests still running end with WORKER_FAILED. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.worker.once('exit', () => resolve());
      this.worker.on('message', (message: FromWorker) => {
        if (message.type === 'closed') void this.worker.terminate();
      });
      this.send({ type: 'close' });
    });
    // Running requests end now; what the worker reports about them while it winds down is dropped.
    this.failAll(new ModelError('WORKER_FAILED', 'the model was closed'));
    return this.closed;
  }

  private send(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  private receive(message: FromWorker): void {
    if (message.type !== 'text' && message.type !== 'end' && message.type !== 'error') return;
    const request = this.pending.get(message.id);
    if (!request) return;
    if (message.type === 'text') {
      request.pieces.push(message.text);
      return;
    }
    this.pending.delete(message.id);
    if (message.type === 'end') {
      request.pieces.end();
      request.settle(message.result);
    } else {
      const error = deserialize(message.error);
      request.pieces.fail(error);
      request.fail(error);
    }
  }

  private failAll(error: ModelError): void {
    this.failure ??= error;
    for (const request of this.pending.values()) {
      request.pieces.fail(error);
      request.fail(error);
    }
    this.pending.clear();
  }
}

function deserialize(error: SerializedModelError): ModelError {
  return new ModelError(error.code, error.message);
}
