import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { LoopbackSocketMode } from './loopback-slack-socket.js';

/**
 * The Slack Web API on 127.0.0.1, for Bolt's WebClient (clientOptions.slackApiUrl):
 * auth.test, chat.postMessage, chat.update, users.info, files.info, files.list and the upload
 * flow (files.getUploadURLExternal, the bytes POSTed to the upload_url it hands out,
 * files.completeUploadExternal) with the bot token, apps.connections.open with the app
 * token, and beside them the other addresses Slack
 * hands out: files' url_private (served only with the bot token; without it, a sign-in web
 * page, as Slack does), slash commands' response_url and Socket Mode's ws:// URL.
 * Every call is recorded with its arguments, its token and when it arrived.
 */
export interface LoopbackUser {
  readonly name: string;
  readonly isAdmin?: boolean;
  readonly isOwner?: boolean;
}

export interface LoopbackSlackSetup {
  readonly botToken: string;
  /** The app-level token (xapp-...) that opens Socket Mode connections. */
  readonly appToken?: string;
  readonly appId?: string;
  readonly teamId: string;
  readonly botUserId: string;
  readonly botId: string;
  readonly users: Readonly<Record<string, LoopbackUser>>;
}

export interface ApiCall {
  readonly method: string;
  readonly args: Readonly<Record<string, string>>;
  readonly token: string | null;
  /** Date.now() when the call arrived. */
  readonly at: number;
}

export interface Download {
  readonly fileId: string;
  readonly authorization: string | null;
  readonly served: boolean;
}

export interface ResponseUrlPost {
  readonly id: string;
  readonly body: { text?: string; response_type?: string; replace_original?: boolean };
  readonly at: number;
}

/** A file the bot uploaded and shared (files.completeUploadExternal). */
export interface SharedUpload {
  readonly id: string;
  readonly name: string;
  readonly title: string;
  readonly bytes: Uint8Array;
  readonly channel: string;
  readonly threadTs?: string;
  readonly initialComment?: string;
  readonly at: number;
}

export interface PostedMessage {
  readonly channel: string;
  readonly ts: string;
  readonly threadTs?: string;
  text: string;
}

export interface LoopbackSlack {
  /** For clientOptions.slackApiUrl: ends in /api/. */
  readonly apiUrl: string;
  readonly calls: ApiCall[];
  readonly downloads: Download[];
  readonly responses: ResponseUrlPost[];
  readonly uploads: SharedUpload[];
  /** Messages as they stand after every update, by ts. */
  readonly messages: Map<string, PostedMessage>;
  /** Socket Mode: its connections, the envelopes sent over them and the acks that came back. */
  readonly socketMode: LoopbackSocketMode;
  callsTo(method: string): ApiCall[];
  /**
   * A file as Slack keeps one after `user` shared it in `channel`; returns its id. `signInPage`:
   * url_private answers with the sign-in page even with the bot token, as Slack does for a
   * request it does not take (a token without files:read, an Authorization header lost on the way).
   */
  addFile(file: { name: string; content: string | Uint8Array; user: string; channel: string; signInPage?: boolean }): string;
  /** A fresh response_url, as a slash command carries one. */
  responseUrl(): string;
  /** Takes the bot out of `channel`: a file it shares there fails with not_in_channel. */
  removeBotFrom(channel: string): void;
  close(): Promise<void>;
}

/** Methods called with the app-level token; every other one takes the bot token. */
const APP_TOKEN_METHODS = new Set(['apps.connections.open']);
/** How often Slack pings a Socket Mode connection. */
const SOCKET_PING_INTERVAL_MS = 2000;

const SIGN_IN_PAGE = '<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to your workspace</body></html>';

export async function startLoopbackSlack(setup: LoopbackSlackSetup): Promise<LoopbackSlack> {
  const calls: ApiCall[] = [];
  const downloads: Download[] = [];
  const responses: ResponseUrlPost[] = [];
  const uploads: SharedUpload[] = [];
  /** Uploads between files.getUploadURLExternal and files.completeUploadExternal. */
  const pending = new Map<string, { name: string; length: number; bytes: Uint8Array | null }>();
  const channelsWithoutBot = new Set<string>();
  const messages = new Map<string, PostedMessage>();
  const files = new Map<string, { name: string; content: Buffer; user: string; channel: string; created: number; signInPage: boolean }>();
  let nextTs = 0;
  let nextId = 0;
  let base = '';
  const socketMode = new LoopbackSocketMode(setup.appId ?? 'A0LOOP', SOCKET_PING_INTERVAL_MS);

  const fileJson = (id: string) => {
    const file = files.get(id);
    if (!file) return null;
    const url = `${base}/files-pri/${setup.teamId}-${id}/${encodeURIComponent(file.name)}`;
    return { id, name: file.name, size: file.content.length, created: file.created, user: file.user, channels: [file.channel], url_private: url, url_private_download: `${url}?download=1` };
  };

  const methods: Record<string, (args: Record<string, string>) => object> = {
    'apps.connections.open': () => socketMode.open(base),
    'auth.test': () => ({ url: 'https://loopback.slack.com/', team: 'Loopback', user: 'tunebot', team_id: setup.teamId, user_id: setup.botUserId, bot_id: setup.botId }),
    'chat.postMessage': (args) => {
      if (!args.channel || !args.text) return { ok: false, error: 'no_text' };
      nextTs += 1;
      const ts = `${1_700_000_000 + nextTs}.000100`;
      messages.set(ts, { channel: args.channel, ts, threadTs: args.thread_ts, text: args.text });
      return { channel: args.channel, ts, message: { text: args.text, ts, thread_ts: args.thread_ts } };
    },
    'chat.update': (args) => {
      const message = messages.get(args.ts);
      if (!message || message.channel !== args.channel) return { ok: false, error: 'message_not_found' };
      message.text = args.text;
      return { channel: args.channel, ts: args.ts, text: args.text };
    },
    'users.info': (args) => {
      const user = setup.users[args.user];
      if (!user) return { ok: false, error: 'user_not_found' };
      return { user: { id: args.user, name: user.name, real_name: user.name, is_bot: false, is_admin: user.isAdmin === true, is_owner: user.isOwner === true, profile: { display_name: user.name, real_name: user.name } } };
    },
    'files.info': (args) => {
      const file = fileJson(args.file);
      return file ? { file } : { ok: false, error: 'file_not_found' };
    },
    'files.list': (args) => {
      const from = Number(args.ts_from ?? 0);
      const listed = [...files.keys()]
        .map((id) => fileJson(id))
        .filter((file) => file !== null)
        .filter((file) => (!args.channel || file.channels.includes(args.channel)) && (!args.user || file.user === args.user) && file.created >= from)
        .sort((a, b) => b.created - a.created)
        .slice(0, Number(args.count ?? 100));
      return { files: listed, paging: { count: listed.length, total: listed.length, page: 1, pages: 1 } };
    },
    'files.getUploadURLExternal': (args) => {
      const length = Number(args.length);
      if (!args.filename || !Number.isInteger(length) || length < 1) return { ok: false, error: 'invalid_arguments' };
      nextId += 1;
      const id = `F${String(nextId).padStart(6, '0')}`;
      pending.set(id, { name: args.filename, length, bytes: null });
      return { upload_url: `${base}/upload/${id}`, file_id: id };
    },
    'files.completeUploadExternal': (args) => {
      const files = JSON.parse(args.files ?? '[]') as { id: string; title?: string }[];
      const started = files.map((file) => ({ file, upload: pending.get(file.id) }));
      if (started.some(({ upload }) => !upload?.bytes || upload.bytes.length !== upload.length)) return { ok: false, error: 'file_not_found' };
      if (args.channel_id && channelsWithoutBot.has(args.channel_id)) return { ok: false, error: 'not_in_channel' };
      for (const { file, upload } of started) {
        if (!upload?.bytes) continue;
        pending.delete(file.id);
        uploads.push({ id: file.id, name: upload.name, title: file.title ?? upload.name, bytes: upload.bytes, channel: args.channel_id, threadTs: args.thread_ts, initialComment: args.initial_comment, at: Date.now() });
      }
      return { files: files.map((file) => ({ id: file.id, title: file.title })) };
    },
  };

  /** Slack's answer to a token that may not call `method`; null when it may. */
  const refuseToken = (method: string, token: string | null): string | null => {
    if (!token) return 'not_authed';
    const wanted = APP_TOKEN_METHODS.has(method) ? setup.appToken : setup.botToken;
    if (token === wanted) return null;
    return token === setup.botToken || token === setup.appToken ? 'not_allowed_token_type' : 'invalid_auth';
  };

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', base);
      const raw = Buffer.concat(chunks);
      const body = raw.toString('utf8');
      const authorization = request.headers.authorization ?? null;
      if (url.pathname.startsWith('/api/')) {
        const method = url.pathname.slice('/api/'.length);
        const args = parseArgs(body, request.headers['content-type'] ?? '');
        const token = authorization?.replace(/^Bearer /u, '') ?? args.token ?? null;
        calls.push({ method, args, token, at: Date.now() });
        const handler = methods[method];
        const tokenError = refuseToken(method, token);
        const result = tokenError ? { ok: false, error: tokenError } : handler ? { ok: true, ...handler(args) } : { ok: false, error: 'unknown_method' };
        response.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(result));
      } else if (url.pathname.startsWith('/files-pri/')) {
        const id = url.pathname.split('/')[2].slice(setup.teamId.length + 1);
        const file = files.get(id);
        const served = file !== undefined && !file.signInPage && authorization === `Bearer ${setup.botToken}`;
        downloads.push({ fileId: id, authorization, served });
        if (served) response.writeHead(200, { 'content-type': 'application/octet-stream' }).end(file.content);
        else response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(SIGN_IN_PAGE);
      } else if (url.pathname.startsWith('/upload/') && request.method === 'POST') {
        const upload = pending.get(url.pathname.slice('/upload/'.length));
        if (!upload) return void response.writeHead(404).end();
        void uploadedBytes(raw, request.headers['content-type'] ?? '').then((bytes) => {
          upload.bytes = bytes;
          response.writeHead(200, { 'content-type': 'text/plain' }).end(`OK - ${bytes.length}`);
        });
      } else if (url.pathname.startsWith('/response/') && request.method === 'POST') {
        responses.push({ id: url.pathname.slice('/response/'.length), body: JSON.parse(body), at: Date.now() });
        response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      } else {
        response.writeHead(404).end();
      }
    });
  });
  server.on('upgrade', (request, socket, head) => socketMode.upgrade(request, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    apiUrl: `${base}/api/`,
    calls,
    downloads,
    responses,
    uploads,
    messages,
    socketMode,
    callsTo: (method) => calls.filter((call) => call.method === method),
    addFile({ name, content, user, channel, signInPage = false }) {
      nextId += 1;
      const id = `F${String(nextId).padStart(6, '0')}`;
      files.set(id, { name, content: Buffer.from(content), user, channel, created: Math.floor(Date.now() / 1000), signInPage });
      return id;
    },
    responseUrl() {
      nextId += 1;
      return `${base}/response/R${nextId}`;
    },
    removeBotFrom(channel) {
      channelsWithoutBot.add(channel);
    },
    async close() {
      await socketMode.close();
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}

/** An upload_url takes the bytes as the body, or as the file of a multipart form (as the WebClient sends them). */
async function uploadedBytes(raw: Buffer, contentType: string): Promise<Uint8Array> {
  if (!contentType.startsWith('multipart/form-data')) return new Uint8Array(raw);
  const form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
  const file = [...form.values()].find((value) => typeof value !== 'string');
  return file ? new Uint8Array(await file.arrayBuffer()) : new Uint8Array(0);
}

/** The WebClient sends form fields; a JSON body is accepted too. */
function parseArgs(body: string, contentType: string): Record<string, string> {
  if (contentType.startsWith('application/json')) {
    const parsed = JSON.parse(body) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(parsed).map(([key, value]) => [key, typeof value === 'string' ? value : JSON.stringify(value)]));
  }
  return Object.fromEntries(new URLSearchParams(body));
}

/** A request as Slack signs one: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}"). */
export function slackSignature(signingSecret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

export interface SignedPostOptions {
  readonly signingSecret: string;
  /** Seconds since the epoch; now when left out. */
  readonly timestamp?: number;
  readonly retryNum?: number;
  /** A form body (slash commands) instead of JSON (events). */
  readonly form?: boolean;
}

/** POSTs `payload` to Bolt's endpoint the way Slack does. */
export function postSigned(url: string, payload: Record<string, unknown>, options: SignedPostOptions): Promise<Response> {
  const body = options.form ? new URLSearchParams(Object.entries(payload).map(([key, value]): [string, string] => [key, String(value)])).toString() : JSON.stringify(payload);
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    'content-type': options.form ? 'application/x-www-form-urlencoded' : 'application/json',
    'x-slack-request-timestamp': String(timestamp),
    'x-slack-signature': slackSignature(options.signingSecret, timestamp, body),
  };
  if (options.retryNum !== undefined) {
    headers['x-slack-retry-num'] = String(options.retryNum);
    headers['x-slack-retry-reason'] = 'http_timeout';
  }
  return fetch(url, { method: 'POST', headers, body });
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    assert.ok(Date.now() < deadline, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
