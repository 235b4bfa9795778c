import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunningTunebot, startTunebot } from '../helpers/run-tunebot.js';

/** `tunebot start --port 0` in scratch folder `dir`, which is its whole configuration. */
function startBot(dir: string, env: Record<string, string>): RunningTunebot {
  return startTunebot(['start', '--port', '0'], {
    TUNEBOT_MODEL_DIR: join(dir, 'models'),
    TUNEBOT_STORAGE_URL: `sqlite://${join(dir, 'tunebot.db')}`,
    TUNEBOT_MODEL_EXECUTION_PROVIDER: 'cpu',
    TUNEBOT_FINE_TUNE_EPOCHS: '1',
    ...env,
  });
}

describe('tunebot start: SIGTERM shuts down gracefully', () => {
  let dir: string;
  const bots: RunningTunebot[] = [];
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
    await Promise.all(bots.map((bot) => bot.kill()));
    await rm(dir, { recursive: true, force: true });
  });

  it('during the first fine-tune: the job checkpoints, and the process exits 0 without serving', async () => {
    const bot = start({ LOG_LEVEL: 'warn' });
    // The progress bar shows from the first finished step on.
    await bot.until(() => bot.stderr.includes('fine-tuning on the FAQ'), 'the first fine-tuning step');
    bot.child.kill('SIGTERM');
    assert.equal(await bot.exitCodeWithin(30_000), 0, bot.stderr);
    assert.doesNotMatch(bot.stdout, /serving/);
    const checkpoint = await stat(join(dir, 'models', '.staging-local_local.checkpoint'));
    assert.ok(checkpoint.isDirectory());
  });

  it('while a reply is being worked out: the reply completes, and the process exits 0', async () => {
    // Every question with an FAQ hit goes to the model, whose reply is checked before it is sent.
    const bot = start({ LOG_LEVEL: 'info', TUNEBOT_ENGINE_CONFIDENT_MATCH: '1', TUNEBOT_ENGINE_RELEVANT_MATCH: '0' });
    const url = await bot.stdoutMatch(/serving the local chat at (http:\/\/\S+)\n/, 'serving line');
    // The cancelled job was recorded as such (not as cut off by a restart) and resumed from its checkpoint.
    assert.doesNotMatch(bot.stderr, /interrupted by a restart/);
    assert.match(bot.stderr, /resuming fine-tuning from its checkpoint/);

    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok');

    // The stream opens before the reply is ready; SIGTERM goes as soon as it is open, unless the
    // engine has already logged its answer for this user (the model was quicker): then ask again,
    // as someone new each time (a user's rate limit would answer at once).
    const questions = ['Is the weather nice for a model?', 'Can the model sing a song?', 'Does the FAQ have a model of a boat?', 'Where is the model train?', 'Which model is the best?', 'How old is the model?'];
    let body = '';
    let sigtermSent = false;
    for (let attempt = 0; attempt < 4 * questions.length && !sigtermSent; attempt++) {
      const user = `user-${attempt}`;
      const response = await fetch(`${url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ userId: user, text: questions[attempt % questions.length] }),
      });
      assert.equal(response.status, 200);
      if (!bot.stderr.includes(`"user":"local:local:${user}"`)) {
        sigtermSent = true;
        bot.child.kill('SIGTERM');
      }
      body = await response.text();
    }
    assert.ok(sigtermSent, 'SIGTERM never came while a reply was being worked out');
    assert.match(body, /^data: \{"text"/, `the reply has its text: ${JSON.stringify(body.slice(0, 200))}`);
    assert.ok(body.endsWith('event: done\ndata: {}\n\n'), `the reply ends with its done event: ${JSON.stringify(body.slice(-200))}`);
    assert.equal(await bot.exitCodeWithin(30_000), 0, bot.stderr);
    assert.match(bot.stderr, /shutting down/);
  });
});
