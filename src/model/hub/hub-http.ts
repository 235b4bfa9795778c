/** HTTP for the hub: redirects, timeouts, and failures sorted into offline, worth a retry, or final. */
import http from 'node:http';
import https from 'node:https';
import { ModelError } from '../errors.js';

/** How to reach the hub: its base URL, the token for it, and the pull's cancel signal. */
export interface HubConnection {
  endpoint: string;
  token?: string;
  signal?: AbortSignal;
}

/** A failure worth another attempt: a dropped connection, a short body, a 5xx or 429 answer. */
export class TransientError extends Error {}

const CONNECT_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 60_000;
const MAX_REDIRECTS = 10;
const MAX_ERROR_BODY = 4096;
const RETRYABLE_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

/**
 * GET with redirects followed by hand, so that the token never leaves the origin it was meant
 * for (the hub redirects LFS files to a CDN on another host).
 */
export async function request(ctx: HubConnection, startUrl: string, range?: string): Promise<http.IncomingMessage> {
  let url = new URL(startUrl);
  let authorization = ctx.token ? `Bearer ${ctx.token}` : undefined;
  for (let redirects = 0; ; redirects++) {
    const headers: Record<string, string> = { 'user-agent': 'tunebot' };
    if (authorization) headers.authorization = authorization;
    if (range) headers.range = range;
    const res = await requestOnce(ctx, url, headers);
    const location = res.headers.location;
    const status = res.statusCode ?? 0;
    if (status < 300 || status >= 400 || !location) return res;
    discard(res);
    if (redirects === MAX_REDIRECTS) throw new ModelError('HUB_ERROR', `more than ${MAX_REDIRECTS} redirects from ${startUrl}`);
    const next = new URL(location, url);
    if (next.origin !== url.origin) authorization = undefined;
    url = next;
  }
}

function requestOnce(ctx: HubConnection, url: URL, headers: Record<string, string>): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    let connected = false;
    const req = client.request(url, { headers, agent: false, signal: ctx.signal }, resolve);
    req.on('socket', (socket) => {
      if (!socket.connecting) {
        connected = true;
        return;
      }
      const timer = setTimeout(() => {
        req.destroy(Object.assign(new Error(`no connection within ${CONNECT_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' }));
      }, CONNECT_TIMEOUT_MS);
      socket.once('connect', () => {
        connected = true;
        clearTimeout(timer);
      });
      socket.once('close', () => clearTimeout(timer));
    });
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no data from ${url.host} for ${IDLE_TIMEOUT_MS / 1000} s`)));
    req.on('error', (error) => {
      if (ctx.signal?.aborted) reject(abortedError());
      // Failing before the connection is made (refused, DNS, connect timeout) means no network or
      // no hub there, which retrying will not fix; a failure after it is a drop worth retrying.
      else if (!connected) reject(offlineError(ctx, url, error));
      else reject(new TransientError(`request to ${url.host} failed (${describe(error)})`, { cause: error }));
    });
    req.end();
  });
}

function offlineError(ctx: HubConnection, url: URL, cause: Error): ModelError {
  const where = url.origin === new URL(ctx.endpoint).origin ? ctx.endpoint : `${url.origin} (redirected from ${ctx.endpoint})`;
  return new ModelError(
    'HUB_OFFLINE',
    `cannot reach the Hugging Face hub at ${where} (${describe(cause)}). ` +
      'Check the network, or set HF_ENDPOINT to a reachable mirror, or create a model without downloading: `tunebot model init`',
    { cause },
  );
}

export async function statusError(
  ctx: HubConnection,
  res: http.IncomingMessage,
  subject: string,
  notFound: string,
): Promise<Error> {
  const status = res.statusCode ?? 0;
  const detail = hubErrorDetail(await readText(res, MAX_ERROR_BODY).catch(() => ''));
  const suffix = detail ? `: ${detail}` : '';
  if (RETRYABLE_STATUSES.has(status)) return new TransientError(`HTTP ${status} for ${subject}${suffix}`);
  const errorCode = res.headers['x-error-code'];
  const tokenHint = ctx.token
    ? 'HF_TOKEN was sent; check that it is valid and has read access to the repo'
    : 'if the repo is private or gated, set HF_TOKEN to a token with read access';
  if (errorCode === 'GatedRepo') {
    return new ModelError('HUB_ERROR', `${subject} is gated on ${ctx.endpoint}: accept its terms on the hub page; ${tokenHint}${suffix}`);
  }
  if (status === 404 || errorCode === 'RepoNotFound' || errorCode === 'RevisionNotFound' || errorCode === 'EntryNotFound') {
    const hint = status === 401 || status === 403 ? `; ${tokenHint}` : '';
    return new ModelError('HUB_ERROR', `${notFound} on ${ctx.endpoint}: ${subject} (HTTP ${status})${hint}${suffix}`);
  }
  if (status === 401 || status === 403) {
    return new ModelError('HUB_ERROR', `${ctx.endpoint} refused access to ${subject} (HTTP ${status}): ${tokenHint}${suffix}`);
  }
  return new ModelError('HUB_ERROR', `${ctx.endpoint} answered HTTP ${status} for ${subject}${suffix}`);
}

function hubErrorDetail(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // Not JSON: the text itself, if short, is the best detail there is.
  }
  return body.length <= 200 ? body.trim() : '';
}

export async function readText(res: http.IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (length >= limit) continue;
    chunks.push(chunk);
    length += chunk.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Drains a response whose body is not wanted; a drop while draining is of no interest. */
export function discard(res: http.IncomingMessage): void {
  res.on('error', () => {});
  res.resume();
}

export function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

function abortedError(): ModelError {
  return new ModelError('ABORTED', 'the pull was cancelled; pull again to resume');
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError();
}
