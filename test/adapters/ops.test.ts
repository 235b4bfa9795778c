import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalChatServer } from '../../src/adapters/local/http-server.js';
import { type OpsEndpoints, Readiness, startOpsServer } from '../../src/adapters/ops-server.js';
import { type App, createApp, SAMPLE_FAQ } from '../../src/core/app.js';
import { scratchConfig } from '../helpers/scratch-config.js';
import { started } from '../helpers/started.js';
import { parseFaqDocument } from '../../src/core/faq/formats.js';
import type { IncomingMessage } from '../../src/core/conversation/message.js';
import { BotMetrics } from '../../src/core/metrics.js';
import { ModelRegistry } from '../../src/core/serving/model-registry.js';
import { silentLogger } from '../../src/log.js';
import { initModel } from '../../src/model/files/model-dir.js';

/** The FAQ every local message sees (config faq.scope is "shared"). */
const LOCAL: IncomingMessage = { platform: 'local', scope: { workspace: 'local', channel: 'web' }, user: { id: 'ops', displayName: 'ops' }, text: '', attachments: [], platformAdmin: true };

interface Exposition {
  /** Metric name -> its # TYPE. */
  readonly types: Map<string, string>;
  /** Metric name -> its # HELP text. */
  readonly help: Map<string, string>;
  /** `name{labels}`, the labels in name order -> value. */
  readonly samples: Map<string, number>;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN|Nan|nan)$/u;

/**
 * Reads Prometheus's text format strictly: every line is a HELP, a TYPE, a sample or empty; a
 * metric's HELP and TYPE come before its samples, each metric is declared once, and each
 * sample belongs to a declared metric (a histogram's through its _bucket, _sum and _count
 * series). Samples are keyed with their labels sorted by name, whatever order they came in.
 */
function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/u.exec(line);
    if (comment) {
      const [, kind, name, rest] = comment;
      if (kind === 'HELP') {
        assert.ok(!help.has(name), `${name} is declared once`);
        help.set(name, rest);
      } else {
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
    samples.set(`${name}${sortedLabels(labels)}`, value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value));
  }
  return { types, help, samples };
}

/** `{b="1",a="2"}` as `{a="2",b="1"}`. */
function sortedLabels(labels: string): string {
  if (!labels) return '';
  const pairs = labels.slice(1, -1).match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/gu) ?? [];
  const name = (pair: string) => pair.slice(0, pair.indexOf('='));
  return `{${pairs.sort((a, b) => (name(a) < name(b) ? -1 : 1)).join(',')}}`;
}

describe('BotMetrics through prom-client', () => {
  it("writes tunebot's figures beside the process's own (CPU, memory, heap, event-loop lag, GC), each declared once", async () => {
    const metrics = new BotMetrics();
    metrics.messageHandled('faq', 0.02);
    metrics.messageHandled('faq', 0.5);
    metrics.feedbackCounted('down');
    metrics.generationFinished(10, 0.5);
    metrics.fineTuneJobsFinished.inc({ status: 'promoted' });
    const { types, samples } = parseExposition(await metrics.render());
    const expectedTypes: [string, string][] = [
      ['process_cpu_seconds_total', 'counter'],
      ['process_resident_memory_bytes', 'gauge'],
      ['nodejs_heap_size_used_bytes', 'gauge'],
      ['nodejs_eventloop_lag_seconds', 'gauge'],
      ['nodejs_gc_duration_seconds', 'histogram'],
      ['tunebot_messages_total', 'counter'],
      ['tunebot_reply_seconds', 'histogram'],
      ['tunebot_model_requests_in_flight', 'gauge'],
    ];
    for (const [name, type] of expectedTypes) assert.equal(types.get(name), type, name);
    assert.ok((samples.get('process_resident_memory_bytes') ?? 0) > 0);
    assert.ok((samples.get('nodejs_heap_size_used_bytes') ?? 0) > 0);
    assert.equal(samples.get('tunebot_messages_total{path="faq"}'), 2);
    assert.equal(samples.get('tunebot_messages_total{path="model"}'), 0, 'every path reads 0 from the start');
    // Buckets are cumulative; 0.02 s falls in the 0.025 bucket, 0.5 s on the 0.5 bound.
    assert.equal(samples.get('tunebot_reply_seconds_bucket{le="0.01",path="faq"}'), 0);
    assert.equal(samples.get('tunebot_reply_seconds_bucket{le="0.025",path="faq"}'), 1);
    assert.equal(samples.get('tunebot_reply_seconds_bucket{le="0.5",path="faq"}'), 2);
    assert.equal(samples.get('tunebot_reply_seconds_bucket{le="+Inf",path="faq"}'), 2);
    assert.equal(samples.get('tunebot_reply_seconds_sum{path="faq"}'), 0.52);
    assert.equal(samples.get('tunebot_generation_tokens_per_second'), 20);
    assert.equal(samples.get('tunebot_feedback_total{kind="down"}'), 1);
    assert.equal(samples.get('tunebot_fine_tune_jobs_finished_total{status="promoted"}'), 1);
  });

});

describe('ops endpoints', () => {
  let dir: string;
  let app: App;
  let readiness: Readiness;
  let ops: OpsEndpoints;
  let opsServer: Server;
  let opsUrl: string;
  let chat: LocalChatServer;
  let chatUrl: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tunebot-ops-'));
    const config = scratchConfig(dir);
    // No model yet: the app starts as a fresh install does.
    app = await createApp(config, silentLogger);
    readiness = new Readiness(app.services.model);
    ops = { readiness, metrics: app.services.metrics };
    ({ server: opsServer, url: opsUrl } = await startOpsServer(ops, { host: '127.0.0.1', port: 0, logger: silentLogger }));
    chat = await started(new LocalChatServer(app.engine, { port: 0, logger: silentLogger, ops }));
    chatUrl = chat.url;
  });

  after(async () => {
    await Promise.all([new Promise((resolve) => opsServer?.close(resolve)), chat?.stop()]);
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

    await app.services.faqFor(LOCAL).applyImport(parseFaqDocument(new Uint8Array(await readFile(SAMPLE_FAQ)), 'markdown').records, 'replace');
    await ask('/help');
    await ask('What is tunebot?');
    // Partly like an FAQ question: relevant, not a certain match, so the model is asked; the
    // untrained model's reply repeats no FAQ passage, so the fallback answers (grounding.ts).
    await ask('does tunebot remember my data');

    // The chat port serves the same figures as the ops port.
    for (const url of [opsUrl, chatUrl]) {
      const { samples } = await metrics(url);
      for (const path of ['command', 'faq', 'fallback']) assert.equal(samples.get(`tunebot_messages_total{path="${path}"}`), 1, `${url} ${path}`);
      assert.equal(samples.get('tunebot_messages_total{path="model"}'), 0);
      assert.equal(samples.get('tunebot_reply_seconds_count{path="fallback"}'), 1);
      assert.equal(samples.get('tunebot_reply_seconds_bucket{le="+Inf",path="fallback"}'), 1);
      assert.ok((samples.get('tunebot_reply_seconds_sum{path="fallback"}') ?? 0) > 0);
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
