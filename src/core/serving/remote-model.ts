import { MODEL_ERROR_CODES, ModelError, type ModelErrorCode } from '../../model/errors.js';
import { PieceQueue } from '../../model/generation/piece-queue.js';
import type { GenerationResult } from '../../model/generation/scheduler.js';
import type { GenerateOptions, GenerationStream } from '../../model/runtime/language-model.js';
import type { ModelInfo } from '../../model/runtime/worker-protocol.js';
import { type LiveModel, onFirstPiece } from './live-model.js';
import { BotMetrics } from '../metrics.js';
import { RegistryError } from './model-registry.js';
import {
  type ErrorBody,
  GENERATE_PATH,
  type GenerateBody,
  type GenerateLine,
  MODEL_PATH,
  type ModelDescription,
  type SwapBody,
  VERSION_HEADER,
  type WireError,
} from './model-server-protocol.js';

export interface RemoteModelOptions {
  /** How long connect() waits for the server's first answer. */
  readonly connectTimeoutMs?: number;
  /** The instance's figures: requests in flight and generated tokens, as ModelHost keeps them. */
  readonly metrics?: BotMetrics;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/**
 * The engine's model when it runs in a `tunebot serve-model` process (config model.server):
 * the same LiveModel as ModelHost, over HTTP. The version is the server's, read at connect,
 * refreshed from the version header of every reply and on `refresh()`. When the server cannot
 * be reached or dies mid-reply, the reply fails with MODEL_SERVER_UNAVAILABLE naming its URL.
 */
export class RemoteModel implements LiveModel {
  private description: ModelDescription | null = null;
  private readonly running = new Set<AbortController>();

  private constructor(
    /** The server's base URL, without a trailing slash. */
    readonly url: string,
    private readonly metrics: BotMetrics,
  ) {}

  /** Fails fast with MODEL_SERVER_UNAVAILABLE when nothing answers at `url`; a server with no model yet is fine. */
  static async connect(url: string, options: RemoteModelOptions = {}): Promise<RemoteModel> {
    const model = new RemoteModel(url.replace(/\/+$/u, ''), options.metrics ?? new BotMetrics());
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      await model.refresh(timeout);
    } catch (error) {
      if (timeout.aborted) throw new ModelError('MODEL_SERVER_UNAVAILABLE', `the model server at ${model.url} did not answer within ${timeoutMs} ms`, { cause: error });
      throw error;
    }
    return model;
  }

  get version(): string | null {
    return this.description?.version ?? null;
  }

  get info(): ModelInfo | null {
    return this.description?.info ?? null;
  }

  /** Reads the server's version again (after a model-change event, say); null while it has none. */
  async refresh(signal?: AbortSignal): Promise<void> {
    const response = await this.request(MODEL_PATH, { signal });
    if (response.status === 503) {
      await response.body?.cancel();
      this.description = null;
      return;
    }
    this.description = await this.readDescription(response);
  }

  /** Asks the server to load `version` from its registry; RegistryError when it has no such version. */
  async swapTo(version: string): Promise<void> {
    const body: SwapBody = { version };
    const response = await this.request(MODEL_PATH, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    this.description = await this.readDescription(response);
  }

  generate(prompt: string, options: GenerateOptions): GenerationStream | null {
    if (this.description === null) return null;
    const { signal, ...generation } = options;
    const cancel = new AbortController();
    const onAbort = () => cancel.abort();
    if (signal?.aborted) cancel.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.running.add(cancel);
    this.metrics.modelRequestsInFlight.inc();
    const started = performance.now();

    const pieces = new PieceQueue();
    const result = this.stream({ prompt, options: generation }, cancel.signal, pieces);
    // Callers that only iterate never look at `result`; its rejection is theirs through the iterator.
    result.catch(() => undefined);
    void result
      .then(
        (finished) => this.metrics.generationFinished(finished.generatedTokens, (performance.now() - started) / 1000),
        (error: unknown) => pieces.fail(error as Error),
      )
      .finally(() => {
        this.running.delete(cancel);
        signal?.removeEventListener('abort', onAbort);
        this.metrics.modelRequestsInFlight.dec();
        pieces.end();
      });
    const stream: GenerationStream = {
      result,
      async *[Symbol.asyncIterator]() {
        try {
          yield* pieces.drain();
        } finally {
          // A reader that stops early does not want the rest: the server stops generating it.
          if (!pieces.ended) cancel.abort();
        }
      },
    };
    return onFirstPiece(stream, () => this.metrics.firstPieceStreamed((performance.now() - started) / 1000));
  }

  /** Cancels the generations in flight; later calls to generate() return null. */
  async close(): Promise<void> {
    this.description = null;
    for (const cancel of this.running) cancel.abort();
  }

  /** Posts the request and reads its NDJSON reply; text goes to `pieces`, the final result is returned. */
  private async stream(body: GenerateBody, signal: AbortSignal, pieces: PieceQueue): Promise<GenerationResult> {
    try {
      const response = await this.request(GENERATE_PATH, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });
      if (!response.ok) throw await this.errorOf(response);
      this.noteVersion(response.headers.get(VERSION_HEADER));
      let done: GenerationResult | null = null;
      for await (const line of lines(response.body as ReadableStream<Uint8Array>)) {
        const message = this.parse<GenerateLine>(line);
        if ('text' in message) pieces.push(message.text);
        else if ('done' in message) done = message.done;
        else throw errorFromWire(message.error, this.url);
      }
      if (!done) throw new ModelError('MODEL_SERVER_UNAVAILABLE', `the model server at ${this.url} ended the reply before it was done`);
      return done;
    } catch (error) {
      if (signal.aborted) throw new ModelError('ABORTED', 'generation was cancelled', { cause: error });
      if (error instanceof ModelError || error instanceof RegistryError) throw error;
      throw new ModelError('MODEL_SERVER_UNAVAILABLE', `the model server at ${this.url} went away mid-reply: ${describe(error)}`, { cause: error });
    }
  }

  /** fetch, with a failure to connect turned into MODEL_SERVER_UNAVAILABLE. */
  private async request(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.url}${path}`, init);
    } catch (error) {
      if (init.signal?.aborted) throw new ModelError('ABORTED', 'the request was cancelled', { cause: init.signal.reason });
      throw new ModelError('MODEL_SERVER_UNAVAILABLE', `cannot reach the model server at ${this.url}: ${describe(error)}`, { cause: error });
    }
  }

  private async readDescription(response: Response): Promise<ModelDescription> {
    if (!response.ok) throw await this.errorOf(response);
    const description = this.parse<ModelDescription>(await response.text());
    if (typeof description.version !== 'string' || typeof description.info !== 'object' || description.info === null) {
      throw new ModelError('MODEL_SERVER_ERROR', `the model server at ${this.url} described its model without a version and info`);
    }
    return description;
  }

  private async errorOf(response: Response): Promise<Error> {
    const text = await response.text();
    let body: Partial<ErrorBody>;
    try {
      body = JSON.parse(text) as Partial<ErrorBody>;
    } catch {
      body = {};
    }
    if (typeof body.error?.code !== 'string' || typeof body.error.message !== 'string') {
      return new ModelError('MODEL_SERVER_ERROR', `the model server at ${this.url} answered ${response.status}: ${text.slice(0, 200)}`);
    }
    return errorFromWire(body.error, this.url);
  }

  private parse<T>(text: string): T {
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ModelError('MODEL_SERVER_ERROR', `the model server at ${this.url} sent something that is not JSON: ${text.slice(0, 200)}`);
    }
  }

  /** A reply from another version than the one we knew: the server swapped, and its info may have changed too. */
  private noteVersion(version: string | null): void {
    if (version === null || version === this.description?.version) return;
    if (this.description) this.description = { ...this.description, version };
    this.refresh().catch(() => undefined);
  }
}

/** The server's error as the error a local model would have thrown. */
function errorFromWire(error: WireError, url: string): Error {
  if (error.code === 'REGISTRY') return new RegistryError(error.message);
  if ((MODEL_ERROR_CODES as readonly string[]).includes(error.code)) return new ModelError(error.code as ModelErrorCode, error.message);
  return new ModelError('MODEL_SERVER_ERROR', `the model server at ${url} refused the request (${error.code}): ${error.message}`);
}

/** fetch's errors say "fetch failed" and keep the reason (ECONNREFUSED, other side closed) in `cause`. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.cause instanceof Error ? `${error.message} (${error.cause.message})` : error.message;
}

/** The lines of a UTF-8 body, as they arrive. */
async function* lines(body: ReadableStream<Uint8Array>): AsyncIterable<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let rest = '';
  for (;;) {
    const { done, value } = await reader.read();
    rest += decoder.decode(value, { stream: !done });
    let newline: number;
    while ((newline = rest.indexOf('\n')) !== -1) {
      yield rest.slice(0, newline);
      rest = rest.slice(newline + 1);
    }
    if (done) break;
  }
  if (rest.trim() !== '') yield rest;
}
