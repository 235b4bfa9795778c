/**
 * npm run bench:instances — messages/s and reply latency through the engine with 1, 2 and 4
 * bot instances (`tunebot start` processes on one Redis) sharing one `tunebot serve-model`,
 * in one run, as JSON lines.
 *
 *   BENCH_INSTANCES=1,2,4      instance counts; the largest is started, each run uses the first N
 *   BENCH_MESSAGES=48          messages per run, each to the model (no FAQ answers)
 *   BENCH_CONCURRENCY=8        messages in flight at once, round-robin over the instances
 *   BENCH_NEW_TOKENS=32        tokens per reply (greedy)
 *   BENCH_DEVICE=auto          the model server's execution provider: cpu, cuda or auto
 *   BENCH_REDIS_URL=redis://127.0.0.1:6379   the instances' storage, under a namespace of the
 *                              run's own whose keys are deleted at the end
 *
 * Latency is from posting a message to the local chat's API to the end of its streamed reply.
 * The model is an untrained tiny GPT-2, which does not end its replies early, so that every reply
 * is as long; its registry also holds a version fine-tuned on the sample FAQ, made here once the
 * way a first start makes it, so that the instances' first-start steps have nothing left to do.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@keyv/redis';
import { createApp, prepareFirstStart } from '../src/core/app.js';
import { loadConfig } from '../src/core/config.js';
import { MODEL_PATH, type ModelDescription } from '../src/core/serving/model-server-protocol.js';
import { createLogger } from '../src/log.js';
import { type RunningTunebot, startTunebot } from '../test/helpers/run-tunebot.js';

const COUNTS = (process.env.BENCH_INSTANCES ?? '1,2,4').split(',').map(Number);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 48);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const NEW_TOKENS = Number(process.env.BENCH_NEW_TOKENS ?? 32);
const DEVICE = process.env.BENCH_DEVICE ?? 'auto';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Every process of the run shares it, and nothing else uses it. */
const STORAGE = { TUNEBOT_STORAGE_URL: REDIS_URL, TUNEBOT_STORAGE_NAMESPACE: `tunebot-bench-${process.pid}-${randomUUID().slice(0, 8)}` };
/** Near the sample FAQ's entries (so that the prompt carries some) but none word for word (BM25 confidence < 1). */
const QUESTIONS = [
  'How would I train the model again?',
  'Does the bot keep my messages forever?',
  'Can I roll back to the model from last week?',
  'Is a GPU faster for the bot?',
  'Where do I see old versions?',
  'What does the bot do with my data?',
]

function report(figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench: 'instances', ...figures }));
}

/** A model folder with an untrained v1 live and a fine-tuned v2, and the sample FAQ in Redis. */
async function prepare(modelDir: string): Promise<void> {
  const env = { TUNEBOT_MODEL_DIR: modelDir, ...STORAGE, TUNEBOT_MODEL_EXECUTION_PROVIDER: 'cpu', TUNEBOT_FINE_TUNE_EPOCHS: '1', LOG_LEVEL: 'warn' };
  const config = loadConfig(env);
  const logger = createLogger('bench-instances', 'warn');
  const app = await createApp(config, logger);
  try {
    await prepareFirstStart(app, config, logger, () => undefined);
    await app.services.rollout.goLive('v1');
  } finally {
    await app.close();
  }
}

async function deleteRunKeys(): Promise<void> {
  const redis = createClient({ url: REDIS_URL, socket: { reconnectStrategy: false, connectTimeout: 2000 } });
  await redis.connect();
  try {
    const keys: string[] = [];
    for await (const batch of redis.scanIterator({ MATCH: `${STORAGE.TUNEBOT_STORAGE_NAMESPACE}:*`, COUNT: 500 })) keys.push(...batch);
    if (keys.length > 0) await redis.del(keys);
  } finally {
    await redis.close();
  }
}

async function metricsOf(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const space = line.lastIndexOf(' ');
    if (!line.startsWith('#') && space > 0) values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

/** Posts one message and reads its reply to the end; returns the milliseconds that took. */
async function ask(instanceUrl: string, text: string, userId: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${instanceUrl}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId, text }) });
  const body = await response.text();
  if (response.status !== 200 || !body.endsWith('event: done\ndata: {}\n\n')) throw new Error(`${instanceUrl} answered ${response.status}: ${body.slice(-300)}`);
  return performance.now() - started;
}

/** `messages` questions, `concurrency` at a time, round-robin over the instances. */
async function load(instanceUrls: readonly string[], messages: number, runName: string): Promise<{ latencies: number[]; seconds: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < messages; i = next++) {
        // A user per message: no history, so that every prompt is alike.
        latencies.push(await ask(instanceUrls[i % instanceUrls.length], QUESTIONS[i % QUESTIONS.length], `${runName}-${i}`));
      }
    }),
  );
  return { latencies, seconds: (performance.now() - started) / 1000 };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

async function stop(processes: readonly RunningTunebot[]): Promise<void> {
  for (const running of processes) running.child.kill('SIGTERM');
  await Promise.all(processes.map((running) => running.exitCodeWithin(60_000).catch(() => running.kill())));
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'tunebot-bench-instances-'));
  const started: RunningTunebot[] = [];
  try {
    const modelDir = join(root, 'models');
    console.error('preparing the model folder (a first start with one fine-tuning epoch) ...');
    await prepare(modelDir);

    // In the repository: run from sources, the model's worker thread finds tsx from its working folder.
    const modelServer = startTunebot(['serve-model', '--port', '0'], { TUNEBOT_MODEL_DIR: modelDir, ...STORAGE, TUNEBOT_MODEL_EXECUTION_PROVIDER: DEVICE });
    started.push(modelServer);
    const serverUrl = await modelServer.stdoutMatch(/serves the model \(v1\) at (http:\/\/\S+)\n/, 'the model server');
    const { info } = (await (await fetch(`${serverUrl}${MODEL_PATH}`)).json()) as ModelDescription;

    const instances: RunningTunebot[] = [];
    for (let i = 0; i < Math.max(...COUNTS); i++) {
      const workDir = join(root, `instance-${i}`);
      await mkdir(workDir);
      instances.push(
        startTunebot(
          ['start', '--port', '0'],
          {
            TUNEBOT_MODEL_SERVER: serverUrl,
            TUNEBOT_MODEL_DIR: modelDir,
            ...STORAGE,
            // Every question goes to the model: no FAQ answer is confident, every hit is context.
            TUNEBOT_ENGINE_CONFIDENT_MATCH: '1',
            TUNEBOT_ENGINE_RELEVANT_MATCH: '0',
            TUNEBOT_GENERATION_GREEDY: 'true',
            TUNEBOT_GENERATION_MAX_NEW_TOKENS: String(NEW_TOKENS),
          },
          workDir,
        ),
      );
    }
    started.push(...instances);
    const instanceUrls = await Promise.all(instances.map((instance, i) => instance.stdoutMatch(/serving the local chat at (http:\/\/\S+)\n/, `instance ${i}`)));
    // The first message of each instance pays for its start-up (JIT, connections); none of them is timed.
    await Promise.all(instanceUrls.map((url, i) => ask(url, QUESTIONS[0], `warm-up-${i}`)));

    for (const count of COUNTS) {
      const before = await metricsOf(serverUrl);
      const { latencies, seconds } = await load(instanceUrls.slice(0, count), MESSAGES, `run-${count}`);
      const after = await metricsOf(serverUrl);
      const delta = (series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);
      const generations = delta('tunebot_model_server_generations_total{outcome="done"}');
      if (generations !== MESSAGES) throw new Error(`the model server generated ${generations} replies for ${MESSAGES} messages: some were not answered by the model server`);
      const sorted = [...latencies].sort((a, b) => a - b);
      report({
        instances: count,
        messages: MESSAGES,
        concurrency: CONCURRENCY,
        provider: info.provider,
        tokensPerReply: delta('tunebot_generated_tokens_total') / MESSAGES,
        messagesPerSecond: Math.round((MESSAGES / seconds) * 100) / 100,
        p50Ms: Math.round(percentile(sorted, 0.5)),
        p95Ms: Math.round(percentile(sorted, 0.95)),
      });
    }
  } finally {
    // Instances first: the model server finishes what they still ask.
    await stop(started.slice(1));
    await stop(started.slice(0, 1));
    await deleteRunKeys();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
