import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startLocalServer } from '../../src/adapters/local/http-server.js';
import { type OpsEndpoints, Readiness, startOpsServer } from '../../src/adapters/ops-server.js';
import { type App, createApp, SAMPLE_FAQ } from '../../src/core/app.js';
import { scratchConfig } from '../helpers/scratch-config.js';
import { parseFaqFile } from '../../src/core/faq/formats.js';
import type { IncomingMessage } from '../../src/core/message.js';
import { MetricsRegistry } from '../../src/core/metrics.js';
import { ModelRegistry } from '../../src/core/model-registry.js';
import { silentLogger } from '../../src/log.js';
import { initModel } from '../../src/model/model-dir.js';

/** The FAQ every local message sees (config faq.scope is "shared"). */
const LOCAL: IncomingMessage = { platform: 'local', scope: { workspace: 'local', channel: 'web' }, user: { id: 'ops', displayName: 'ops' }, text: '', attachments: [], platformAdmin: true };

interface Exposition {
  /** Metric name -> its # TYPE. */
  readonly types: Map<string, string>;
  /** Metric name -> its # HELP text. */
  readonly help: Map<string, string>;
  /** `name{labels}` as written -> value. */
  readonly samples: Map<string, number>;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$/u;

/**
 * Reads Prometheus's text format strictly: every line is a HELP, a TYPE or a sample; a
 * metric's HELP and TYPE come before its samples, and each sample belongs to a declared metric
 * (a histogram's through its _bucket, _sum and _count series).
 */
function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.slice(0, -1).split('\n')) {
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/u.exec(line);
    if (comment) {
      const [, kind, name, rest] = comment;
      if (kind === 'HELP') help.set(name, rest);
      else {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest), `a known type: ${line}`);
        assert.ok(help.has(name), `HELP comes before TYPE for ${name}`);
        types.set(name, rest);
      }
      continue;
    }
    const sample = SAMPLE_LINE.exec(line);
    assert.ok(sample, `a sample line: ${JSON.stringify(line)}`);
    const [, name, labels = '', value] = sample;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/u, '');
    assert.ok(types.has(family), `${name} belongs to a declared metric`);
    if (family !== name) assert.equal(types.get(family), 'histogram', `${name} is a histogram series`);
    samples.set(`${name}${labels}`, value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value));
  }
  return { types, help, samples };
}

describe('metrics registry', () => {
  it('writes counters, gauges and histograms in the text format, labels escaped', () => {
    const registry = new MetricsRegistry();
    const requests = registry.counter('demo_requests_total', 'Requests.\nBy route, with a \\ in the help.', ['route']);
    const depth = registry.gauge('demo_depth', 'Queue depth.');
    const latency = registry.histogram('demo_seconds', 'Latency.', [0.1, 1], ['route']);
    registry.counter('demo_idle_total', 'Never counted.');
    requests.inc({ route: 'a "quoted"\\path\n' });
    requests.inc({ route: 'b' }, 2.5);
    depth.add(3);
    depth.add(-1);
    for (const value of [0.05, 0.1, 0.5, 7]) latency.observe({ route: 'b' }, value);

    const text = registry.render();
    assert.ok(text.includes('# HELP demo_requests_total Requests.\\nBy route, with a \\\\ in the help.\n'), text);
    const { types, samples } = parseExposition(text);
    assert.deepEqual([...types], [['demo_requests_total', 'counter'], ['demo_depth', 'gauge'], ['demo_seconds', 'histogram'], ['demo_idle_total', 'counter']]);
    assert.equal(samples.get('demo_idle_total'), 0);
    assert.equal(samples.get('demo_requests_total{route="a \\"quoted\\"\\\\path\\n"}'), 1);
    assert.equal(samples.get('demo_requests_total{route="b"}'), 2.5);
    assert.equal(samples.get('demo_depth'), 2);
    // Buckets are cumulative; a value on a bound falls in that bound's bucket.
    assert.equal(samples.get('demo_seconds_bucket{route="b",le="0.1"}'), 2);
    assert.equal(samples.get('demo_seconds_bucket{route="b",le="1"}'), 3);
    assert.equal(samples.get('demo_seconds_bucket{route="b",le="+Inf"}'), 4);
    assert.equal(samples.get('demo_seconds_count{route="b"}'), 4);
    assert.equal(samples.get('demo_seconds_sum{route="b"}'), 0.05 + 0.1 + 0.5 + 7);
  });

  it('refuses bad names, wrong labels, a counter going down and unordered buckets', () => {
    const registry = new MetricsRegistry();
    const counter = registry.counter('ok_total', 'A counter.', ['path']);
    assert.throws(() => registry.counter('ok_total', 'Again.'), /already registered/);
    assert.throws(() => registry.counter('bad-name', 'Dash.'), /not a valid metric name/);
    assert.throws(() => registry.gauge('g', 'Label.', ['__reserved']), /not a valid label name/);
    assert.throws(() => registry.histogram('h', 'Buckets.', [1, 1]), /finite and increasing/);
    assert.throws(() => registry.histogram('h2', 'Le.', [1], ['le']), /bucket label/);
    assert.throws(() => counter.inc({ path: 'x' }, -1), /only goes up/);
    assert.throws(() => counter.inc({ route: 'x' } as unknown as { path: string }), /takes the labels path/);
  });
});

describe('ops endpoints', () => {
  let dir: string;
  let app: App;
  let readiness: Readiness;
  let ops: OpsEndpoints;
  let opsServer: Server;
  let opsUrl: string;
  let chatServer: Server;
  let chatUrl: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tunebot-ops-'));
    const config = scratchConfig(dir);
    // No model yet: the app starts as a fresh install does.
    app = await createApp(config, silentLogger);
    readiness = new Readiness(app.services.model);
    ops = { readiness, metrics: app.services.metrics };
    ({ server: opsServer, url: opsUrl } = await startOpsServer(ops, { host: '127.0.0.1', port: 0, logger: silentLogger }));
    ({ server: chatServer, url: chatUrl } = await startLocalServer(app.engine, { port: 0, logger: silentLogger, ops }));
  });

  after(async () => {
    await Promise.all([opsServer, chatServer].map((server) => new Promise((resolve) => server?.close(resolve))));
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const health = async (url: string) => {
    const response = await fetch(`${url}/healthz`);
    return { status: response.status, text: await response.text() };
  };
  const metrics = async (url: string) => {
    const response = await fetch(`${url}/metrics`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    return parseExposition(await response.text());
  };
  const ask = async (text: string) => {
    const response = await fetch(`${chatUrl}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: 'ops', text }) });
    assert.equal(response.status, 200);
    const body = await response.text();
    assert.ok(body.endsWith('event: done\ndata: {}\n\n'), body);
  };

  it('/healthz is 503 with the reason until the bot serves with a model, 200 "ok" then, 503 again when it stops', async () => {
    for (const url of [opsUrl, chatUrl]) assert.deepEqual(await health(url), { status: 503, text: 'starting: preparing the model and the FAQ' });
    readiness.serving();
    for (const url of [opsUrl, chatUrl]) assert.deepEqual(await health(url), { status: 503, text: 'no model is loaded' });

    const registry = new ModelRegistry(join(dir, 'models'));
    await initModel(join(dir, 'new-model'), 'tiny', 0);
    await registry.publish(join(dir, 'new-model'), 'v1');
    await registry.use('v1');
    await app.services.model.swapTo('v1');
    for (const url of [opsUrl, chatUrl]) assert.deepEqual(await health(url), { status: 200, text: 'ok' });

    readiness.stopping();
    assert.deepEqual(await health(opsUrl), { status: 503, text: 'shutting down' });
    readiness.serving();
  });

  it('/metrics counts messages by path, reply latency and generated tokens', async () => {
    const before = await metrics(opsUrl);
    assert.equal(before.types.get('tunebot_messages_total'), 'counter');
    assert.equal(before.types.get('tunebot_reply_seconds'), 'histogram');
    assert.equal(before.types.get('tunebot_model_requests_in_flight'), 'gauge');
    for (const path of ['command', 'faq', 'model', 'fallback']) assert.equal(before.samples.get(`tunebot_messages_total{path="${path}"}`), 0, path);

    await app.services.faqFor(LOCAL).applyImport(parseFaqFile(new Uint8Array(await readFile(SAMPLE_FAQ)), 'markdown'), 'replace');
    await ask('/help');
    await ask('What is tunebot?');
    // Partly like an FAQ question: relevant, not a confident match, so the model answers.
    await ask('Is the weather nice for a model?');

    // The chat port serves the same figures as the ops port.
    for (const url of [opsUrl, chatUrl]) {
      const { samples } = await metrics(url);
      for (const path of ['command', 'faq', 'model']) assert.equal(samples.get(`tunebot_messages_total{path="${path}"}`), 1, `${url} ${path}`);
      assert.equal(samples.get('tunebot_messages_total{path="fallback"}'), 0);
      assert.equal(samples.get('tunebot_reply_seconds_count{path="model"}'), 1);
      assert.equal(samples.get('tunebot_reply_seconds_bucket{path="model",le="+Inf"}'), 1);
      assert.ok((samples.get('tunebot_reply_seconds_sum{path="model"}') ?? 0) > 0);
      const tokens = samples.get('tunebot_generated_tokens_total') ?? 0;
      assert.ok(tokens >= 1 && tokens <= 8, `tokens generated: ${tokens}`);
      assert.ok((samples.get('tunebot_generation_tokens_per_second') ?? 0) > 0);
      assert.equal(samples.get('tunebot_model_requests_in_flight'), 0);
    }
  });

  it('/metrics counts fine-tuning jobs started, and finished by status', async () => {
    const faq = app.services.faqFor(LOCAL);
    const { done } = await app.services.jobs.start(faq, 'local:local', 'local:ops-test');
    assert.equal(await app.services.jobs.cancel('local:local'), true);
    const finished = await done;
    assert.equal(finished.status, 'cancelled', finished.error);
    const { samples } = await metrics(opsUrl);
    assert.equal(samples.get('tunebot_fine_tune_jobs_started_total'), 1);
    assert.equal(samples.get('tunebot_fine_tune_jobs_finished_total{status="cancelled"}'), 1);
  });

  it('answers 404 on the ops server for anything else', async () => {
    const response = await fetch(`${opsUrl}/`);
    assert.equal(response.status, 404);
    assert.match(await response.text(), /GET \/healthz and GET \/metrics/);
  });
});
