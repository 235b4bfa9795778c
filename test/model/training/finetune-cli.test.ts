import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { initModel } from '../../../src/model/files/model-dir.js';
import { assertExit, startTunebot, tunebot } from '../../helpers/run-tunebot.js';

/** `tunebot finetune` from its sources, as a child process: summary, progress bar, exit codes. */


const EXAMPLES = [
  ['How do I reset my password?', ' Go to Settings > Account and press Reset.'],
  ['Where can I download the app?', ' The app is on the App Store and Google Play.'],
  ['What are your opening hours?', ' We are open from nine to five on weekdays.'],
  ['Can I get a refund?', ' Refunds are possible within thirty days of purchase.'],
  ['How do I contact support?', ' Write to help@example.com and we answer within a day.'],
  ['Is my data encrypted?', ' Yes, all data is encrypted at rest and in transit.'],
  ['How do I delete my account?', ' Send a deletion request from the Privacy page.'],
  ['Is there a free trial?', ' Every new account gets a free trial of fourteen days.'],
].map(([question, answer]) => ({ prompt: `Question: ${question}\nAnswer:`, completion: answer }));

describe('tunebot finetune', () => {
  let root: string;
  let modelDir: string;
  let dataFile: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-finetune-cli-'));
    modelDir = join(root, 'base');
    await initModel(modelDir, 'tiny', 1);
    dataFile = join(root, 'faq.jsonl');
    await writeFile(dataFile, `${EXAMPLES.map((example) => JSON.stringify(example)).join('\n')}\n`);
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('fine-tunes, draws a progress bar on stderr and prints a summary', async () => {
    const outDir = join(root, 'tuned');
    const result = await tunebot(['finetune', '--model', modelDir, '--data', dataFile, '--out', outDir, '--epochs', '2', '--batch', '4', '--device', 'cpu']);
    assertExit(result, 0);
    // 8 examples: 1 held out for validation (the default 10%), 7 in 2 batches of 4, 2 epochs.
    const summary = /^fine-tuned 4 steps in \d+ s: train loss (\d+\.\d{4}), validation loss (\d+\.\d{4}); model in (.+) \(loss curve: (.+)\)\n$/.exec(result.stdout);
    assert.ok(summary, `stdout: ${result.stdout}`);
    assert.equal(summary[3], outDir);
    assert.equal(summary[4], join(outDir, 'loss-curve.png'));
    assert.match(result.stderr, /^fine-tuning \[[#.]{20}\] \d+% \d\/4/m);
    assert.match(result.stderr, /^fine-tuning \[#{20}\] 100% 4\/4 .*loss \d+\.\d{4} lr \S+ \d+ tok\/s$/m);

    const record = JSON.parse(await readFile(join(outDir, 'training.json'), 'utf8'));
    assert.equal(record.steps, 4);
    assert.equal(Number(summary[1]), Number(record.finalTrainLoss.toFixed(4)));
    assert.equal(Number(summary[2]), Number(record.validation.at(-1).loss.toFixed(4)));
    assert.deepEqual(
      [record.settings.epochs, record.settings.batchSize, record.settings.executionProvider, record.examples],
      [2, 4, 'cpu', { train: 7, validation: 1, cut: 0 }],
    );
    assert.equal(existsSync(`${outDir}.checkpoint`), false);
  });

  it('Ctrl-C (SIGINT to the command and its trainer process, as a terminal sends it) stops at a step with a checkpoint the same command resumes', async () => {
    const outDir = join(root, 'interrupted');
    const args = ['finetune', '--model', modelDir, '--data', dataFile, '--out', outDir, '--epochs', '400', '--patience', '0', '--batch', '2', '--checkpoint-every', '1000', '--device', 'cpu'];
    const running = startTunebot(args);
    try {
      await running.until(() => /fine-tuning \[[#.]{20}\] \d+% [3-9]\d*\//.test(running.stderr), 'step 3 on the progress bar');
      const trainer = execFileSync('pgrep', ['-P', String(running.child.pid)], { encoding: 'utf8' }).trim().split('\n').map(Number);
      assert.equal(trainer.length, 1, 'one trainer process');
      for (const pid of [running.child.pid as number, ...trainer]) process.kill(pid, 'SIGINT');
      assert.equal(await running.exitCodeWithin(60_000), 1, running.stderr);
      assert.match(running.stderr, /stopping at the next step/);
      assert.match(running.stderr, /CANCELLED.*cancelled at step (\d+); the checkpoint in .*interrupted\.checkpoint resumes it/);
      const step = JSON.parse(await readFile(join(`${outDir}.checkpoint`, 'progress.json'), 'utf8')).step as number;
      assert.ok(step >= 3, `checkpoint at step ${step}`);
    } finally {
      await running.kill();
    }
  });

  it('without --data it exits 2 with the usage', async () => {
    const result = await tunebot(['finetune', '--model', modelDir, '--out', join(root, 'never')]);
    assertExit(result, 2);
    assert.match(result.stderr, /^--data FILE\.jsonl is required\nusage: tunebot finetune --model DIR --data FILE\.jsonl --out DIR/);
    assert.equal(result.stdout, '');
  });

  it('a malformed data file exits 1 naming the line', async () => {
    const malformed = join(root, 'malformed.jsonl');
    await writeFile(malformed, `${JSON.stringify(EXAMPLES[0])}\n${JSON.stringify(EXAMPLES[1])}\n{"prompt": "Hi" "completion": "Hello"}\n`);
    const result = await tunebot(['finetune', '--model', modelDir, '--data', malformed, '--out', join(root, 'never'), '--device', 'cpu']);
    assertExit(result, 1);
    assert.match(result.stderr, /^error DATA_INVALID: training data .*malformed\.jsonl: line 3 is not valid JSON/m);
    assert.equal(existsSync(join(root, 'never')), false);
  });
});
