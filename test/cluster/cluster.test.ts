import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@keyv/redis';
import { ConversationMemory } from '../../src/core/conversation/memory.js';
import { openStorage } from '../../src/core/storage/open-storage.js';
import { REDIS_URL } from '../core/storage-backends.js';
import { type RunningTunebot, startTunebot } from '../helpers/run-tunebot.js';

/**
 * The cluster of DESIGN.md "Storage and scale" as separate processes on loopback: a fine-tune
 * worker, a model server, and two bot instances, all on one Redis namespace and one model
 * store folder. Messages and fine-tunes go through the instances' local HTTP API.
 */
const namespace = `tunebot-cluster-${process.pid}-${randomUUID().slice(0, 8)}`;
let root: string;
let modelDir: string;
const processes: RunningTunebot[] = [];

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    TUNEBOT_STORAGE_URL: REDIS_URL,
    TUNEBOT_STORAGE_NAMESPACE: namespace,
    TUNEBOT_MODEL_DIR: modelDir,
    TUNEBOT_MODEL_EXECUTION_PROVIDER: 'cpu',
    TUNEBOT_MODEL_INTRA_OP_THREADS: '1',
    TUNEBOT_FINE_TUNE_RUNNER: 'queue',
    TUNEBOT_FINE_TUNE_EPOCHS: '1',
    TUNEBOT_FINE_TUNE_CHECKPOINT_EVERY: '4',
    TUNEBOT_FINE_TUNE_GATE: 'force',
    TUNEBOT_FINE_TUNE_WORKER_LOCK_SECONDS: '2',
    TUNEBOT_OPS_PORT: '0',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

function start(args: string[], extra: Record<string, string> = {}): RunningTunebot {
  const running = startTunebot(args, env(extra), root);
  processes.push(running);
  return running;
}

async function startWorker(): Promise<RunningTunebot> {
  const worker = start(['worker']);
  await worker.stdoutMatch(/(taking fine-tune jobs)/u, 'the worker taking jobs', 240_000);
  return worker;
}

async function startInstance(modelServer: string): Promise<{ process: RunningTunebot; url: string }> {
  const instance = start(['start', '--port', '0'], { TUNEBOT_MODEL_SERVER: modelServer });
  const url = await instance.stdoutMatch(/serving the local chat at (\S+)/u, 'the local chat');
  return { process: instance, url: url.replace(/\/$/u, '') };
}

/** One message through an instance's local API: the reply's text pieces as they stream. */
async function* replyPieces(instance: string, userId: string, text: string): AsyncGenerator<string> {
  const response = await fetch(`${instance}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId, text }) });
  assert.equal(response.status, 200);
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) !== -1) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (event.startsWith('event: done')) return;
      if (event.startsWith('event: error')) throw new Error(`the instance answered with an error: ${event}`);
      const data = event.split('\n').find((line) => line.startsWith('data: '));
      const parsed = data ? (JSON.parse(data.slice('data: '.length)) as { text?: unknown }) : {};
      if (typeof parsed.text === 'string') yield parsed.text;
    }
  }
  throw new Error('the reply ended without its done event');
}

async function ask(instance: string, userId: string, text: string): Promise<string> {
  let reply = '';
  for await (const piece of replyPieces(instance, userId, text)) reply += piece;
  return reply;
}

async function liveVersionOf(instance: string): Promise<string | undefined> {
  return /Live model (v\d+)/u.exec(await ask(instance, 'operator', '/model status'))?.[1];
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tunebot-cluster-'));
  modelDir = join(root, 'model-store');
});

after(async () => {
  await Promise.all(processes.map((running) => running.kill()));
  const redis = createClient({ url: REDIS_URL });
  await redis.connect();
  const keys: string[] = [];
  for await (const batch of redis.scanIterator({ MATCH: `${namespace}*`, COUNT: 500 })) keys.push(...batch);
  if (keys.length > 0) await redis.del(keys);
  await redis.close();
  await rm(root, { recursive: true, force: true });
});

describe('a cluster of separate processes on one Redis', () => {
  it('shares memory and FAQ, survives a killed worker and a killed instance, and rolls every new version out', async () => {
    // The worker makes the cluster's first start: a model, the sample FAQ, a first fine-tune.
    let worker = await startWorker();
    const server = start(['serve-model', '--port', '0']);
    const serverUrl = await server.stdoutMatch(/serves the model \(v\d+\) at (\S+)/u, 'the model server');
    const a = await startInstance(serverUrl);
    let b = await startInstance(serverUrl);
    const firstVersion = await liveVersionOf(a.url);
    assert.ok(firstVersion, 'the instances serve a version');
    assert.equal(await liveVersionOf(b.url), firstVersion);

    // One user writing to both instances at once: every turn is kept.
    const questions = ['What is tunebot?', 'Does tunebot need a GPU?', 'How do I see the FAQ?', 'tell me something new about the weather'];
    const replies = await Promise.all(questions.flatMap((question) => [ask(a.url, 'alice', question), ask(b.url, 'alice', question)]));
    assert.ok(replies.every((reply) => reply.length > 0), 'every message got a reply');
    const storage = await openStorage(REDIS_URL, { namespace });
    const memory = new ConversationMemory(storage.turns);
    const aliceTurns = async () => (await memory.exportUser({ platform: 'local', workspace: 'local' }, 'alice')).turns;
    assert.equal((await aliceTurns()).length, 2 * 2 * questions.length, 'both instances kept every turn of alice');

    // An FAQ entry added through A answers on B.
    assert.match(await ask(a.url, 'admin', '/faq add "Where is the cluster test?" "In test/cluster."'), /q\d+/u);
    assert.match(await ask(b.url, 'bob', 'Where is the cluster test?'), /In test\/cluster\./u);

    // A fine-tune through A; its worker is killed after a checkpoint.
    const checkpoint = join(modelDir, '.staging-local_local.checkpoint');
    const firstTry = (async () => {
      let text = '';
      for await (const piece of replyPieces(a.url, 'admin', '/model finetune epochs 5')) text += piece;
      return text;
    })();
    await eventually(async () => existsSync(checkpoint), 'a checkpoint of the running job', 120_000);
    await worker.kill();
    worker = await startWorker();
    const failed = await firstTry;
    assert.match(failed, /Fine-tuning started \(job [\w-]+\)/u);
    assert.match(failed, /failed[\s\S]*stopped mid-job[\s\S]*resumes/u, failed);
    assert.ok(existsSync(checkpoint), 'the failed job left its checkpoint');

    // The retry, through B, resumes from the checkpoint; B is killed while it relays the progress.
    const retry = replyPieces(b.url, 'admin', '/model finetune epochs 5')[Symbol.asyncIterator]();
    assert.match(String((await retry.next()).value), /Fine-tuning started/u);
    await b.process.kill();
    await assert.rejects(retry.next(), 'the reply from the killed instance breaks off');
    await eventually(async () => /resuming fine-tuning from its checkpoint/u.test(worker.stderr), 'the retry resuming', 60_000);

    // The job finishes on the worker anyway, and its version reaches the model server and A.
    const newVersion = `v${Number(firstVersion!.slice(1)) + 1}`;
    await eventually(async () => (await liveVersionOf(a.url)) === newVersion, `${newVersion} live on instance A`, 240_000);
    const described = (await (await fetch(`${serverUrl}/v1/model`)).json()) as { version: string };
    assert.equal(described.version, newVersion, 'the model server swapped too');
    // An instance that starts later serves the current version.
    b = await startInstance(serverUrl);
    assert.equal(await liveVersionOf(b.url), newVersion);
    assert.match(await ask(b.url, 'alice', 'What is tunebot?'), /\S/u);
    assert.equal((await aliceTurns()).length, 2 * 2 * questions.length + 2, 'alice kept every turn across the kills');
    await storage.close();
  });
});
