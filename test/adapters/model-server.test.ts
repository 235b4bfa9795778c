import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_BODY_BYTES, type ModelServer, startModelServer } from '../../src/adapters/model-server/model-server.js';
import { BotMetrics } from '../../src/core/metrics.js';
import { ModelHost } from '../../src/core/serving/model-host.js';
import { RegistryError, ModelRegistry } from '../../src/core/serving/model-registry.js';
import { GENERATE_PATH, MODEL_PATH, VERSION_HEADER } from '../../src/core/serving/model-server-protocol.js';
import { RemoteModel } from '../../src/core/serving/remote-model.js';
import type { LiveModel } from '../../src/core/serving/live-model.js';
import { silentLogger } from '../../src/log.js';
import { ModelError, type ModelErrorCode } from '../../src/model/errors.js';
import type { GenerationResult } from '../../src/model/generation/scheduler.js';
import type { GenerationStream } from '../../src/model/runtime/language-model.js';
import { publishTinyVersion } from '../helpers/tiny-versions.js';

/** One thread: the machine is shared, and the texts do not depend on it. */
const loadOptions = { executionProvider: 'cpu', intraOpThreads: 1, logLevel: 'silent' } as const;
const GREEDY = { greedy: true, maxNewTokens: 16 } as const;
/** Far more tokens than a test waits for: only a cancelled generation ends soon. */
const LONG = { greedy: true, maxNewTokens: 1000 } as const;
const PROMPTS = ['The weather today', 'Our office is', 'How do I reset', 'Welcome to the'];

let root: string;
let registry: ModelRegistry;
let metrics: BotMetrics;
let host: ModelHost;
let server: ModelServer;
let remote: RemoteModel;

function serve(model: LiveModel, modelMetrics: BotMetrics): Promise<ModelServer> {
  return startModelServer(model, { host: '127.0.0.1', port: 0, logger: silentLogger, metrics: modelMetrics, requireVersion: (version) => registry.requireVersion(version) });
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tunebot-model-server-'));
  registry = new ModelRegistry(join(root, 'models'));
  await publishTinyVersion(registry, 'v1', 1, 1024);
  await publishTinyVersion(registry, 'v2', 2);
  metrics = new BotMetrics();
  host = new ModelHost((version) => registry.dirOf(version), loadOptions, silentLogger, metrics);
  await host.swapTo('v1');
  server = await serve(host, metrics);
  remote = await RemoteModel.connect(server.url);
});
after(async () => {
  await remote?.close();
  await server?.close(0);
  await host?.close();
  await rm(root, { recursive: true, force: true });
});

async function complete(stream: GenerationStream | null): Promise<{ text: string; result: GenerationResult }> {
  assert.ok(stream, 'a model is loaded');
  let text = '';
  for await (const piece of stream) text += piece;
  return { text, result: await stream.result };
}

function isError(type: typeof ModelError | typeof RegistryError, code: ModelErrorCode | 'REGISTRY', message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  };
}

/** A metric's value in the server's /metrics text. */
async function metricOf(url: string, series: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  assert.ok(line, `${series} is in /metrics`);
  return Number(line.slice(series.length + 1));
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

function post(url: string, path: string, body: string): Promise<Response> {
  return fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
}

async function expectError(response: Response, status: number, code: string, message: RegExp): Promise<void> {
  const body = (await response.json()) as { error: { code: string; message: string } };
  assert.equal(response.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code);
  assert.match(body.error.message, message);
}

/** Reads what is left; rejects as the stream does. */
async function readToEnd(pieces: AsyncIterator<string>): Promise<void> {
  for (let next = await pieces.next(); !next.done; next = await pieces.next());
}

/** Waits for the first text of a long generation, then hands the stream's iterator on. */
async function firstPiece(stream: GenerationStream | null): Promise<AsyncIterator<string>> {
  assert.ok(stream, 'a model is loaded');
  const pieces = stream[Symbol.asyncIterator]();
  assert.equal((await pieces.next()).done, false, 'the generation has begun');
  return pieces;
}

describe('tunebot serve-model: the server and RemoteModel', () => {
  it('connects and knows the version and model the server serves', () => {
    assert.equal(remote.version, 'v1');
    assert.deepEqual(remote.info, host.info);
  });

  it('gives greedy text and results equal to the same model used directly', async () => {
    for (const prompt of PROMPTS) {
      const direct = await complete(host.generate(prompt, GREEDY));
      assert.ok(direct.text.length > 0);
      assert.deepEqual(await complete(remote.generate(prompt, GREEDY)), direct, prompt);
    }
  });

  it('streams text in pieces as it is generated, with the serving version in a header', async () => {
    const response = await post(server.url, GENERATE_PATH, JSON.stringify({ prompt: PROMPTS[0], options: GREEDY }));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/x-ndjson');
    assert.equal(response.headers.get(VERSION_HEADER), 'v1');
    const lines = (await response.text()).trimEnd().split('\n').map((line) => JSON.parse(line) as { text?: string; done?: GenerationResult });
    const direct = await complete(host.generate(PROMPTS[0], GREEDY));
    assert.ok(lines.length > 2, 'several pieces, then done');
    assert.equal(lines.slice(0, -1).map((line) => line.text).join(''), direct.text);
    assert.deepEqual(lines.at(-1), { done: direct.result });
  });

  it('answers concurrent requests, batched on one model, with the texts each gets alone', async () => {
    const requests = PROMPTS.map((prompt, i) => [prompt, { greedy: true, maxNewTokens: 8 + 4 * i }] as const);
    const alone = [];
    for (const [prompt, options] of requests) alone.push(await complete(host.generate(prompt, options)));
    const together = await Promise.all(requests.map(([prompt, options]) => complete(remote.generate(prompt, options))));
    assert.deepEqual(together, alone);
  });

  it('stops generating on the server when the client aborts, or stops reading', async () => {
    const tokensBefore = await metricOf(server.url, 'tunebot_generated_tokens_total');
    const abort = new AbortController();
    const aborted = await firstPiece(remote.generate(PROMPTS[0], { ...LONG, signal: abort.signal }));
    abort.abort();
    await assert.rejects(readToEnd(aborted), isError(ModelError, 'ABORTED', /cancelled/));
    await until(async () => (await metricOf(server.url, 'tunebot_model_server_generations_total{outcome="cancelled"}')) === 1, 'the server cancelled the generation');

    // A reader that breaks out of its loop early wants no more either.
    const stream = remote.generate(PROMPTS[1], LONG);
    await firstPiece(stream);
    for await (const piece of stream as GenerationStream) {
      assert.ok(piece);
      break;
    }
    await assert.rejects((stream as GenerationStream).result, isError(ModelError, 'ABORTED', /cancelled/));
    await until(async () => (await metricOf(server.url, 'tunebot_model_server_generations_total{outcome="cancelled"}')) === 2, 'the server cancelled the second generation');

    assert.equal(await metricOf(server.url, 'tunebot_model_requests_in_flight'), 0, 'nothing runs on the model any more');
    assert.equal(await metricOf(server.url, 'tunebot_generated_tokens_total'), tokensBefore, 'neither generation ran to its end');
  });

  it('times each generation to its first piece of text, on the server and in its client', async () => {
    const clientMetrics = new BotMetrics();
    const client = await RemoteModel.connect(server.url, { metrics: clientMetrics });
    try {
      const counted = async (registry: BotMetrics) => (await registry.firstPieceSeconds.get()).values.find((value) => value.metricName === 'tunebot_generation_first_piece_seconds_count')?.value ?? 0;
      const serverBefore = await counted(metrics);
      const started = performance.now();
      const stream = client.generate(PROMPTS[0], LONG);
      const pieces = await firstPiece(stream);
      const waited = (performance.now() - started) / 1000;
      assert.equal(await counted(clientMetrics), 1);
      assert.equal(await counted(metrics), serverBefore + 1);
      const sum = (await clientMetrics.firstPieceSeconds.get()).values.find((value) => value.metricName === 'tunebot_generation_first_piece_seconds_sum')?.value ?? -1;
      assert.ok(sum > 0 && sum <= waited, `the client's ${sum} s lies within the ${waited} s it waited`);
      await readToEnd(pieces);
      assert.equal(await counted(clientMetrics), 1, 'once per generation');
    } finally {
      await client.close();
    }
  });

  it('refuses bad requests with 400, 404 or 413 and a message that says what is wrong', async () => {
    const { url } = server;
    await expectError(await post(url, GENERATE_PATH, '{"prompt": "hi",'), 400, 'REQUEST_INVALID', /the body is not JSON/);
    await expectError(await post(url, GENERATE_PATH, '["hi"]'), 400, 'REQUEST_INVALID', /must be a JSON object: \{"prompt"/);
    await expectError(await post(url, GENERATE_PATH, '{"text": "hi"}'), 400, 'REQUEST_INVALID', /unknown field "text"; the fields are prompt, options/);
    await expectError(await post(url, GENERATE_PATH, '{"prompt": ""}'), 400, 'REQUEST_INVALID', /prompt must be a non-empty string/);
    await expectError(await post(url, GENERATE_PATH, '{"prompt": "hi", "options": {"topP": 2}}'), 400, 'OPTIONS_INVALID', /topP must be in \(0, 1\], got 2/);
    await expectError(await post(url, GENERATE_PATH, '{"prompt": "hi", "options": {"maxNewTokens": "5"}}'), 400, 'OPTIONS_INVALID', /maxNewTokens must be an integer >= 1/);
    await expectError(await post(url, GENERATE_PATH, '{"prompt": "hi", "options": {"temprature": 1}}'), 400, 'REQUEST_INVALID', /unknown option "temprature"; the options are maxNewTokens, greedy, temperature/);
    await expectError(await post(url, GENERATE_PATH, '{"prompt": "hi", "options": {"greedy": "yes"}}'), 400, 'REQUEST_INVALID', /greedy must be true or false/);
    await expectError(await post(url, GENERATE_PATH, JSON.stringify({ prompt: 'x'.repeat(MAX_BODY_BYTES) })), 413, 'BODY_TOO_LARGE', /limited to 1048576 bytes/);
    await expectError(await post(url, MODEL_PATH, '{"version": "v9"}'), 404, 'REGISTRY', /there is no version v9; the versions are v1, v2/);
    await expectError(await post(url, MODEL_PATH, '{"name": "v2"}'), 400, 'REQUEST_INVALID', /\{"version": "v2"\}/);
    await expectError(await fetch(`${url}/v2/generate`), 404, 'ROUTE_NOT_FOUND', /no route GET \/v2\/generate/);
    assert.equal(host.version, 'v1', 'nothing was swapped');

    // Through the client: the errors a local model would have thrown.
    const badOptions = remote.generate('hi', { topP: 2 });
    assert.ok(badOptions);
    await assert.rejects(badOptions.result, isError(ModelError, 'OPTIONS_INVALID', /topP must be in \(0, 1\]/));
    await assert.rejects(complete(badOptions), isError(ModelError, 'OPTIONS_INVALID', /topP/));
    await assert.rejects(remote.swapTo('v9'), isError(RegistryError, 'REGISTRY', /there is no version v9/));
  });

  it('serves 503 until a model is swapped in, and fails a reply cut mid-stream with MODEL_SERVER_UNAVAILABLE', async () => {
    const emptyMetrics = new BotMetrics();
    const empty = new ModelHost((version) => registry.dirOf(version), loadOptions, silentLogger, emptyMetrics);
    const emptyServer = await serve(empty, emptyMetrics);
    try {
      await expectError(await fetch(`${emptyServer.url}${MODEL_PATH}`), 503, 'MODEL_NOT_FOUND', /no model is loaded yet/);
      await expectError(await post(emptyServer.url, GENERATE_PATH, '{"prompt": "hi"}'), 503, 'MODEL_NOT_FOUND', /POST \/v1\/model/);
      const health = await fetch(`${emptyServer.url}/healthz`);
      assert.equal(health.status, 503);
      assert.equal(await health.text(), 'no model is loaded');
      const client = await RemoteModel.connect(emptyServer.url);
      assert.equal(client.version, null);
      assert.equal(client.generate('hi', GREEDY), null);

      await client.swapTo('v1');
      assert.equal(client.version, 'v1');
      assert.equal((await fetch(`${emptyServer.url}/healthz`)).status, 200);

      const cut = await firstPiece(client.generate(PROMPTS[0], LONG));
      emptyServer.server.closeAllConnections();
      await assert.rejects(
        readToEnd(cut),
        isError(ModelError, 'MODEL_SERVER_UNAVAILABLE', new RegExp(`the model server at ${emptyServer.url} went away mid-reply`)),
      );
      await client.close();
    } finally {
      await emptyServer.close(0);
      await empty.close();
    }
  });

  it('fails to connect fast and clearly when nothing listens, or nothing answers', async () => {
    const unused = createHttpServer();
    await new Promise<void>((resolve) => unused.listen(0, '127.0.0.1', resolve));
    const { port } = unused.address() as { port: number };
    await new Promise<void>((resolve) => unused.close(() => resolve()));
    const started = performance.now();
    await assert.rejects(RemoteModel.connect(`http://127.0.0.1:${port}/`), isError(ModelError, 'MODEL_SERVER_UNAVAILABLE', new RegExp(`cannot reach the model server at http://127.0.0.1:${port}: fetch failed \\(connect ECONNREFUSED`)));
    assert.ok(performance.now() - started < 2000, 'at once, not after a timeout');

    // A server that takes the connection and never answers.
    const sockets: Socket[] = [];
    const silent = createTcpServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port: silentPort } = silent.address() as { port: number };
      await assert.rejects(RemoteModel.connect(`http://127.0.0.1:${silentPort}`, { connectTimeoutMs: 200 }), isError(ModelError, 'MODEL_SERVER_UNAVAILABLE', /did not answer within 200 ms/));
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('serves /healthz and /metrics beside the API', async () => {
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok');
    assert.ok((await metricOf(server.url, 'tunebot_model_server_generations_total{outcome="done"}')) > 0);
    // The server's registry and the model's, merged by prom-client: each metric once, the process's among them.
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const declared = text.split('\n').flatMap((line) => /^# TYPE (\S+) /u.exec(line)?.[1] ?? []);
    assert.equal(new Set(declared).size, declared.length, 'no metric is declared twice');
    for (const name of ['tunebot_model_server_generations_total', 'tunebot_generated_tokens_total', 'process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds', 'nodejs_gc_duration_seconds']) {
      assert.ok(declared.includes(name), `${name} is in /metrics`);
    }
  });
  it('swaps the server to another version through the client; other clients see it on their next reply', async () => {
    const other = await RemoteModel.connect(server.url);
    const before = await complete(remote.generate(PROMPTS[0], GREEDY));
    await remote.swapTo('v2');
    assert.equal(remote.version, 'v2');
    assert.equal(remote.info?.config.n_positions, 128, "the info is v2's");
    assert.equal(host.version, 'v2');
    assert.equal(other.version, 'v1', 'not told yet');
    const after = await complete(other.generate(PROMPTS[0], GREEDY));
    assert.notEqual(after.text, before.text, 'v2 generated it');
    assert.equal(other.version, 'v2', 'the reply named its version');
    await until(async () => other.info?.config.n_positions === 128, 'the other client re-read the model info');
    await other.close();
  });
});
