import { createServer, type IncomingMessage as HttpRequest, type Server, type ServerResponse } from 'node:http';
import type { Adapter, ChatEngine } from '../../core/conversation/adapter.js';
import { errorReply } from '../../core/conversation/error-reply.js';
import type { Attachment, IncomingMessage } from '../../core/conversation/message.js';
import { describeLiveEvaluation, type LiveEvaluation } from '../../core/fine-tuning/model-scorer.js';
import { fileTooLargeNote, isReplyFile, type ReplyFile } from '../../core/conversation/reply.js';
import type { Logger } from '../../log.js';
import { readBody } from '../http-body.js';
import { closeGracefully, listen, type OpsEndpoints, SHUTDOWN_GRACE_MS, serveOps, serverUrl } from '../ops-server.js';
import { CHAT_PAGE } from './chat-page.js';
import { FileShelf, type FileShelfOptions } from './file-shelf.js';

/**
 * The local adapter's HTTP face, bound to 127.0.0.1 unless config local.host says otherwise:
 *   GET  /                 the chat page
 *   POST /api/messages     {"userId", "text", "displayName"?} -> text/event-stream of
 *                          `data: {"text": piece}` events and, for each file the reply carries,
 *                          `event: file` with {"name", "contentType", "size", "title"?, "url"};
 *                          then `event: done`
 *   POST /api/upload?userId=U&name=faq.csv  (raw body) -> same stream, as "/faq import" with the file
 *   GET  /api/files/<id>/<name>  a file a reply carried (kept for a while, see file-shelf.ts)
 *   GET  /api/model        {"version", "evaluation", "summary"}: the live version's last figures
 *                          (model-scorer.ts), when the server was given `modelFigures`
 *   GET  /healthz          "ok" (the server is up); with `ops`, readiness, and GET /metrics
 * Everyone here is the local admin: on any address but loopback, the port must stay private.
 */

export const MAX_UPLOAD_BYTES = 60 * 1024 * 1024;
const MAX_JSON_BYTES = 1024 * 1024;

export interface LocalServerOptions {
  readonly port: number;
  /** 127.0.0.1 when left out. */
  readonly host?: string;
  readonly logger: Logger;
  readonly ops?: OpsEndpoints;
  /** How long, and how many bytes of, the files replies carry are kept for download. */
  readonly files?: FileShelfOptions;
  /** The live version and its last evaluation, for GET /api/model and the page's model line. */
  readonly modelFigures?: () => Promise<LiveEvaluation>;
  /** How long replies under way may run on after stop() before their connections are cut; SHUTDOWN_GRACE_MS by default. */
  readonly shutdownGraceMs?: number;
}

export class LocalChatServer implements Adapter {
  readonly name = 'local chat';
  private listening: { readonly server: Server; readonly url: string } | null = null;

  constructor(
    private readonly engine: ChatEngine,
    private readonly options: LocalServerOptions,
  ) {}

  /** The chat page's address, e.g. http://127.0.0.1:8080/; once started. */
  get url(): string {
    if (!this.listening) throw new Error('the local chat is not started');
    return this.listening.url;
  }

  async start(): Promise<void> {
    const { engine, options } = this;
    const host = options.host ?? '127.0.0.1';
    const shelf = new FileShelf(options.files);
    const server = createServer((request, response) => {
      route(engine, shelf, options, request, response).catch((error: unknown) => {
        options.logger.error({ err: error }, 'local chat request failed');
        if (!response.headersSent) sendJson(response, 500, { error: 'internal error' });
        response.end();
      });
    });
    await listen(server, host, options.port);
    if (!isLoopback(host)) {
      options.logger.warn({ host }, 'the local chat listens beyond loopback and makes everyone who reaches it an admin: keep its port private');
    }
    this.listening = { server, url: serverUrl(server, host) };
  }

  /** Takes no more requests; replies under way run on for the grace period, then their connections are cut. */
  async stop(): Promise<void> {
    const listening = this.listening;
    if (!listening) return;
    this.listening = null;
    const graceMs = this.options.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
    await closeGracefully(listening.server, graceMs, () => this.options.logger.warn({ graceSeconds: graceMs / 1000 }, 'replies still running at the end of the grace period: cutting them off'));
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

async function route(engine: ChatEngine, shelf: FileShelf, options: LocalServerOptions, request: HttpRequest, response: ServerResponse): Promise<void> {
  if (options.ops && serveOps(options.ops, request, response)) return;
  const url = new URL(request.url ?? '/', 'http://127.0.0.1');
  if (request.method === 'GET' && url.pathname === '/') {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(CHAT_PAGE);
  } else if (request.method === 'GET' && url.pathname === '/healthz') {
    response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  } else if (request.method === 'GET' && url.pathname === '/api/model' && options.modelFigures) {
    const live = await options.modelFigures();
    sendJson(response, 200, { ...live, summary: describeLiveEvaluation(live) });
  } else if (request.method === 'POST' && url.pathname === '/api/messages') {
    const body = await readBody(request, MAX_JSON_BYTES);
    if (!body) return sendJson(response, 413, { error: `a message body is limited to ${MAX_JSON_BYTES} bytes` });
    let parsed: { userId?: unknown; text?: unknown; displayName?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return sendJson(response, 400, { error: 'the body must be JSON: {"userId": "...", "text": "..."}' });
    }
    if (typeof parsed.userId !== 'string' || !parsed.userId || typeof parsed.text !== 'string') {
      return sendJson(response, 400, { error: 'userId (a non-empty string) and text (a string) are required' });
    }
    await streamReply(engine, shelf, response, localMessage(parsed.userId, typeof parsed.displayName === 'string' ? parsed.displayName : parsed.userId, parsed.text, []), options.logger);
  } else if (request.method === 'POST' && url.pathname === '/api/upload') {
    const userId = url.searchParams.get('userId');
    const name = url.searchParams.get('name');
    if (!userId || !name) return sendJson(response, 400, { error: 'userId and name query parameters are required' });
    const body = await readBody(request, MAX_UPLOAD_BYTES);
    if (!body) return sendJson(response, 413, { error: `an upload is limited to ${MAX_UPLOAD_BYTES} bytes` });
    const attachment: Attachment = { name, size: body.length, bytes: async () => new Uint8Array(body) };
    await streamReply(engine, shelf, response, localMessage(userId, userId, '/faq import', [attachment]), options.logger);
  } else if (request.method === 'GET' && url.pathname.startsWith(FILES_PATH)) {
    const id = url.pathname.slice(FILES_PATH.length).split('/')[0];
    const file = shelf.get(id);
    if (!file) return sendJson(response, 404, { error: `no file ${id}: a reply's files are kept for ${shelf.options.keepMs / 60_000} minutes; ask again` });
    response.writeHead(200, { 'content-type': file.contentType, 'content-length': file.data.byteLength, 'content-disposition': contentDisposition(file.name) }).end(file.data);
  } else {
    sendJson(response, 404, { error: `no route ${request.method} ${url.pathname}` });
  }
}

function localMessage(userId: string, displayName: string, text: string, attachments: Attachment[]): IncomingMessage {
  return { platform: 'local', scope: { workspace: 'local', channel: 'web' }, user: { id: userId, displayName }, text, attachments, platformAdmin: true };
}

/**
 * The reply as server-sent events. Each write waits for the client to take the last one
 * ('drain'), so a slow reader slows the reply instead of piling it up in memory. A client that
 * closes the connection stops the reply, and with it the model's generation: return() on the
 * engine's generator takes effect once the part it is producing is ready.
 */
async function streamReply(engine: ChatEngine, shelf: FileShelf, response: ServerResponse, message: IncomingMessage, logger: Logger): Promise<void> {
  response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  // The client sees the stream open while the reply is still being worked out.
  response.flushHeaders();
  const gone = new AbortController();
  const reply = engine.handle({ ...message, signal: gone.signal })[Symbol.asyncIterator]();
  // 'close' comes after a finished reply too, when neither does anything.
  response.once('close', () => {
    gone.abort();
    void reply.return?.().catch(() => undefined);
  });
  try {
    for (let step = await reply.next(); !step.done; step = await reply.next()) {
      const part = step.value;
      if (!(await writeEvent(response, isReplyFile(part) ? fileEvent(shelf, part) : textEvent(part)))) return;
    }
    await writeEvent(response, 'event: done\ndata: {}\n\n');
  } catch (error) {
    logger.error({ err: error, user: `local:${message.user.id}` }, 'the engine failed on a local chat message');
    await writeEvent(response, `event: error\ndata: ${JSON.stringify({ error: errorReply(error) })}\n\n`);
  }
  response.end();
}

/** Writes `chunk`; when the client's buffer is full, resolves once it drained: true, or false if the client went away first. */
function writeEvent(response: ServerResponse, chunk: string): Promise<boolean> {
  if (response.destroyed) return Promise.resolve(false);
  if (response.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const settle = (drained: boolean) => {
      response.off('drain', onDrain);
      response.off('close', onClose);
      resolve(drained);
    };
    const onDrain = () => settle(true);
    const onClose = () => settle(false);
    response.on('drain', onDrain);
    response.on('close', onClose);
  });
}

const FILES_PATH = '/api/files/';

function textEvent(text: string): string {
  return `data: ${JSON.stringify({ text })}\n\n`;
}

/** A file event with the address the page downloads it from; a text event instead when the shelf cannot hold it. */
function fileEvent(shelf: FileShelf, file: ReplyFile): string {
  const id = shelf.put(file);
  if (id === null) return textEvent(`\n${fileTooLargeNote(file, 'the local chat', shelf.options.maxBytes)}`);
  const url = `${FILES_PATH}${id}/${encodeURIComponent(file.name)}`;
  return `event: file\ndata: ${JSON.stringify({ name: file.name, contentType: file.contentType, size: file.data.byteLength, title: file.title, url })}\n\n`;
}

/** Saves as `name`: ASCII in filename, the name itself in filename* (RFC 6266). */
function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/gu, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
