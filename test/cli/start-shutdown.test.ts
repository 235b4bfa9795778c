import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** `tunebot start --port 0` as a child process, its output collected as it comes. */
interface RunningBot {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
  /** Resolves when `condition` holds on the output; fails when the process ends first or after `timeoutMs`. */
  until(condition: () => boolean, what: string, timeoutMs?: number): Promise<void>;
}

function startBot(dir: string, env: Record<string, string>): RunningBot {
  // The developer's own TUNEBOT_* settings stay out: the scratch folder is the whole configuration.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TUNEBOT_') && name !== 'LOG_LEVEL'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--port', '0'], {
    cwd: REPO,
    env: {
      ...inherited,
      TUNEBOT_MODEL_DIR: join(dir, 'models'),
      TUNEBOT_STORAGE_URL: `sqlite://${join(dir, 'tunebot.db')}`,
      TUNEBOT_MODEL_EXECUTION_PROVIDER: 'cpu',
      TUNEBOT_FINE_TUNE_EPOCHS: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let ended = false;
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      ended = true;
      resolve(code);
    });
  });
  const bot: RunningBot = {
    child,
    stdout: '',
    stderr: '',
    exited,
    async until(condition, what, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while (!condition()) {
        if (ended) assert.fail(`tunebot exited (code ${child.exitCode}) before ${what}:\n${bot.stdout}\n${bot.stderr}`);
        if (Date.now() > deadline) assert.fail(`no ${what} after ${timeoutMs / 1000} s:\n${bot.stdout}\n${bot.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
  };
  child.stdout?.on('data', (chunk: Buffer) => (bot.stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (bot.stderr += chunk.toString()));
  return bot;
}

async function exitCodeWithin(bot: RunningBot, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`tunebot did not exit within ${ms / 1000} s of SIGTERM:\n${bot.stderr}`)), ms);
  });
  try {
    return await Promise.race([bot.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('tunebot start: SIGTERM shuts down gracefully', () => {
  let dir: string;
  const bots: RunningBot[] = [];
  const start = (env: Record<string, string>) => {
    const bot = startBot(dir, env);
    bots.push(bot);
    return bot;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tunebot-start-'));
  });

  after(async () => {
    // A failed test leaves its bot running, which would keep the test process alive.
    for (const bot of bots) if (bot.child.exitCode === null && bot.child.signalCode === null) bot.child.kill('SIGKILL');
    await Promise.all(bots.map((bot) => bot.exited));
    await rm(dir, { recursive: true, force: true });
  });

  it('during the first fine-tune: the job checkpoints, and the process exits 0 without serving', async () => {
    const bot = start({ LOG_LEVEL: 'warn' });
    // The progress bar shows from the first finished step on.
    await bot.until(() => bot.stderr.includes('fine-tuning on the FAQ'), 'the first fine-tuning step');
    bot.child.kill('SIGTERM');
    assert.equal(await exitCodeWithin(bot, 30_000), 0, bot.stderr);
    assert.doesNotMatch(bot.stdout, /serving/);
    const checkpoint = await stat(join(dir, 'models', '.staging-local_local.checkpoint'));
    assert.ok(checkpoint.isDirectory());
  });

  it('while a reply streams: the reply completes, and the process exits 0', async () => {
    // Every question with an FAQ hit goes to the model, whose reply streams piece by piece.
    const bot = start({ LOG_LEVEL: 'info', TUNEBOT_ENGINE_CONFIDENT_MATCH: '1', TUNEBOT_ENGINE_RELEVANT_MATCH: '0' });
    await bot.until(() => /serving the local chat at http:\/\/\S+\n/.test(bot.stdout), 'serving line');
    const url = /serving the local chat at (http:\/\/\S+)\n/.exec(bot.stdout)?.[1] as string;
    // The cancelled job was recorded as such (not as cut off by a restart) and resumed from its checkpoint.
    assert.doesNotMatch(bot.stderr, /interrupted by a restart/);
    assert.match(bot.stderr, /resuming fine-tuning from its checkpoint/);

    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok');

    // A freshly trained tiny model sometimes ends its reply at once (end-of-text first, and an
    // empty reply is answered with the fallback); ask again until a reply is still streaming.
    const questions = ['Is the weather nice for a model?', 'Can the model sing a song?', 'Does the FAQ have a model of a boat?', 'Where is the model train?', 'Which model is the best?', 'How old is the model?'];
    let body = '';
    let bodyAtSigterm: string | null = null;
    for (const text of questions) {
      const response = await fetch(`${url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ userId: 'alice', text }),
      });
      assert.equal(response.status, 200);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      body = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        body += decoder.decode(value, { stream: true });
        if (bodyAtSigterm === null && !body.includes('event: done')) {
          bodyAtSigterm = body;
          bot.child.kill('SIGTERM');
        }
      }
      if (bodyAtSigterm !== null) break;
    }
    assert.ok(bodyAtSigterm !== null && !bodyAtSigterm.includes('event: done'), `SIGTERM came after the reply had ended: ${JSON.stringify(bodyAtSigterm)}`);
    assert.ok(body.endsWith('event: done\ndata: {}\n\n'), `the reply ends with its done event: ${JSON.stringify(body.slice(-200))}`);
    assert.ok(body.split('\n\n').filter((event) => event.startsWith('data: {"text"')).length > 1, 'the model streamed its reply in pieces');
    assert.equal(await exitCodeWithin(bot, 30_000), 0, bot.stderr);
    assert.match(bot.stderr, /shutting down/);
  });
});
