import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { LiveModel } from '../../core/serving/live-model.js';
import { Counter, Registry } from 'prom-client';
import type { BotMetrics } from '../../core/metrics.js';
import {
  type ErrorBody,
  type GenerateBody,
  GENERATE_PATH,
  type GenerateLine,
  MODEL_PATH,
  type ModelDescription,
  NDJSON_CONTENT_TYPE,
  VERSION_HEADER,
  type WireError,
  type WireErrorCode,
} from '../../core/serving/model-server-protocol.js';
import { RegistryError } from '../../core/serving/model-registry.js';
import type { Logger } from '../../log.js';
import { ModelError } from '../../model/errors.js';
import { readBody } from '../http-body.js';
import { closeGracefully, listen, Readiness, serveOps, serverUrl } from '../ops-server.js';
import { parseGenerateBody, parseSwapBody, RequestError } from './request-bodies.js';

/**
 * `tunebot serve-model`'s HTTP face (the API is in core/serving/model-server-protocol.ts): one
 * LiveModel, usually a ModelHost, shared by every request, so that concurrent generations
 * meet in the worker's batches. Bot instances reach it through RemoteModel.
 * Anyone who reaches the port can generate and swap versions: keep it on a private network.
 */
export interface ModelServerOptions {
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  /** The model's figures (the ModelHost's), served at /metrics with the server's own. */
  readonly metrics: BotMetrics;
  /** Throws a RegistryError for a version that is not published: the registry's requireVersion. */
  readonly requireVersion: (version: string) => Promise<void>;
}

export interface ModelServer {
  readonly url: string;
  readonly server: Server;
  /**
   * Stops taking requests and lets the generations in flight finish; after `graceMs` their
   * connections are cut. The model stays open: it is the caller's.
   */
  close(graceMs: number): Promise<void>;
}

/** A prompt fills at most the model's context (1024 tokens for GPT-2): a few KiB of text. */
export const MAX_BODY_BYTES = 1024 * 1024;

const OUTCOMES = ['done', 'failed', 'cancelled'] as const;

export async function startModelServer(model: LiveModel, options: ModelServerOptions): Promise<ModelServer> {
  const readiness = new Readiness(model);
  const own = new Registry();
  const generations = new Counter({
    name: 'tunebot_model_server_generations_total',
    help: 'Generations the model server answered, by how they ended (cancelled: the client went away).',
    labelNames: ['outcome'] as const,
    registers: [own],
  });
  for (const outcome of OUTCOMES) generations.inc({ outcome }, 0);
  const served = Registry.merge([options.metrics.registry, own]);
  const ops = { readiness, metrics: { render: () => served.metrics() } };
  const api = new ModelApi(model, options, (outcome) => generations.inc({ outcome }));

  const server = createServer((request, response) => {
    if (serveOps(ops, request, response)) return;
    api.route(request, response).catch((error: unknown) => {
      options.logger.error({ err: error }, 'model server request failed');
      if (!response.headersSent) sendError(response, 500, 'WORKER_FAILED', 'internal error');
      response.end();
    });
  });
  await listen(server, options.host, options.port);
  readiness.serving();
  return {
    url: serverUrl(server, options.host),
    server,
    async close(graceMs) {
      readiness.stopping();
      await closeGracefully(server, graceMs, () => options.logger.warn({ graceSeconds: graceMs / 1000 }, 'generations still running at the end of the grace period: cutting them off'));
    },
  };
}

class ModelApi {
  constructor(
    private readonly model: LiveModel,
    private readonly options: ModelServerOptions,
    private readonly countGeneration: (outcome: (typeof OUTCOMES)[number]) => void,
  ) {}

  async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const { pathname } = new URL(request.url ?? '/', 'http://localhost');
    if (request.method === 'GET' && pathname === MODEL_PATH) return this.describe(response);
    if (request.method === 'POST' && pathname === MODEL_PATH) return this.swap(request, response);
    if (request.method === 'POST' && pathname === GENERATE_PATH) return this.generate(request, response);
    sendError(response, 404, 'ROUTE_NOT_FOUND', `no route ${request.method} ${pathname}; this server has GET and POST ${MODEL_PATH}, POST ${GENERATE_PATH}, GET /healthz and GET /metrics`);
  }

  private describe(response: ServerResponse): void {
    const description = this.description();
    if (description) sendJson(response, 200, description);
    else sendNoModel(response);
  }

  private async swap(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readJson(request, response);
    if (body === undefined) return;
    try {
      const { version } = parseSwapBody(body);
      await this.options.requireVersion(version);
      await this.model.swapTo(version);
      sendJson(response, 200, this.description());
    } catch (error) {
      if (error instanceof RequestError) return sendError(response, 400, error.code, error.message);
      if (error instanceof RegistryError) return sendError(response, 404, error.code, error.message);
      if (error instanceof ModelError) return sendError(response, 500, error.code, `the version failed to load: ${error.message}`);
      throw error;
    }
  }

  private async generate(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readJson(request, response);
    if (body === undefined) return;
    let parsed: GenerateBody;
    try {
      parsed = parseGenerateBody(body);
    } catch (error) {
      if (error instanceof RequestError || error instanceof ModelError) return sendError(response, 400, error.code, error.message);
      throw error;
    }
    const cancel = new AbortController();
    // Read in the same tick as generate(): a swap cannot come between them.
    const version = this.model.version;
    const stream = this.model.generate(parsed.prompt, { ...parsed.options, signal: cancel.signal });
    if (!stream || version === null) return sendNoModel(response);
    // A client that goes away mid-reply frees its place in the batch at once.
    response.once('close', () => {
      if (!response.writableFinished) cancel.abort();
    });
    response.writeHead(200, { 'content-type': NDJSON_CONTENT_TYPE, 'cache-control': 'no-store', [VERSION_HEADER]: version });
    try {
      for await (const text of stream) writeLine(response, { text });
      writeLine(response, { done: await stream.result });
      this.countGeneration('done');
    } catch (error) {
      if (cancel.signal.aborted) {
        this.countGeneration('cancelled');
        this.options.logger.debug({ version }, 'the client went away: generation cancelled');
        return;
      }
      this.countGeneration('failed');
      this.options.logger.warn({ err: error, version }, 'generation failed');
      writeLine(response, { error: wireError(error) });
    }
    response.end();
  }

  private description(): ModelDescription | null {
    const { version, info } = this.model;
    return version !== null && info !== null ? { version, info } : null;
  }
}

/** The parsed body, or undefined when it is too large or not JSON (answered here). */
async function readJson(request: IncomingMessage, response: ServerResponse): Promise<unknown> {
  const body = await readBody(request, MAX_BODY_BYTES);
  if (!body) return sendError(response, 413, 'BODY_TOO_LARGE', `a request body is limited to ${MAX_BODY_BYTES} bytes`);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (error) {
    return sendError(response, 400, 'REQUEST_INVALID', `the body is not JSON: ${(error as Error).message}`);
  }
}

function wireError(error: unknown): WireError {
  if (error instanceof ModelError) return { code: error.code, message: error.message };
  return { code: 'WORKER_FAILED', message: error instanceof Error ? error.message : String(error) };
}

function writeLine(response: ServerResponse, line: GenerateLine): void {
  response.write(`${JSON.stringify(line)}\n`);
}

function sendNoModel(response: ServerResponse): void {
  sendError(response, 503, 'MODEL_NOT_FOUND', `no model is loaded yet: swap a registry version in with POST ${MODEL_PATH} {"version": "v1"}`);
}

function sendError(response: ServerResponse, status: number, code: WireErrorCode, message: string): undefined {
  const body: ErrorBody = { error: { code, message } };
  sendJson(response, status, body);
  return undefined;
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}
