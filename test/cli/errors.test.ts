import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closedPort } from '../helpers/loopback-hub.js';
import { assertExit, type CliResult, tunebot } from '../helpers/run-tunebot.js';

/** What stderr holds besides the JSON log lines: what the person at the terminal reads. */
function plainLines(result: CliResult): string[] {
  return result.stderr.split('\n').filter((line) => line !== '' && !line.startsWith('{') && !/fine-tuning on the FAQ \[/u.test(line));
}

/** Exit 1 and one line on stderr, `error CODE: ...`, with no stack trace. */
function assertOneCodedLine(result: CliResult, code: string, message: RegExp): void {
  assertExit(result, 1);
  const lines = plainLines(result);
  assert.equal(lines.length, 1, `one line on stderr:\n${result.stderr}`);
  assert.match(lines[0], new RegExp(`^error ${code}: `, 'u'));
  assert.match(lines[0], message);
  assert.doesNotMatch(result.stderr, /\n\s+at /u, 'no stack trace');
}

describe('tunebot start: a coded error reaches the terminal as one line with its code and what to do', { concurrency: 2 }, () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tunebot-cli-errors-'));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a Redis that is down: STORAGE_UNAVAILABLE, naming the URL and the setting', async () => {
    const port = await closedPort();
    const result = await tunebot(['start', '--port', '0'], { TUNEBOT_STORAGE_URL: `redis://127.0.0.1:${port}`, TUNEBOT_MODEL_DIR: join(dir, 'redis-models') });
    assertOneCodedLine(result, 'STORAGE_UNAVAILABLE', new RegExp(`cannot reach Redis storage redis://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.*; start Redis there, or point storage\\.url \\(TUNEBOT_STORAGE_URL\\) at one that runs$`, 'u'));
  });

  it('a first fine-tune that fails: FINE_TUNE_FAILED with the cause and the setting to change', async () => {
    const result = await tunebot(['start', '--port', '0'], {
      TUNEBOT_MODEL_DIR: join(dir, 'models'),
      TUNEBOT_STORAGE_URL: `sqlite://${join(dir, 'tunebot.db')}`,
      TUNEBOT_MODEL_EXECUTION_PROVIDER: 'cpu',
      TUNEBOT_FINE_TUNE_EPOCHS: '1',
      // The first step's update sends the weights to infinity: the loss of the second is NaN.
      TUNEBOT_FINE_TUNE_LEARNING_RATE: '1e30',
    });
    assertOneCodedLine(result, 'FINE_TUNE_FAILED', /the first fine-tune failed \(TRAINING_DIVERGED: the loss is NaN at step 2.*\); lower fineTune\.learningRate \(TUNEBOT_FINE_TUNE_LEARNING_RATE\) and start again/u);
  });

  it('a setting out of range: CONFIG_INVALID, naming the variable', async () => {
    const result = await tunebot(['start', '--port', '0'], { TUNEBOT_ENGINE_TOP_K: '0' });
    assertOneCodedLine(result, 'CONFIG_INVALID', /engine\.topK \(TUNEBOT_ENGINE_TOP_K\)/u);
  });
});
