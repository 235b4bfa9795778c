import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type TextGenerationPipeline, env, pipeline } from '@huggingface/transformers';
import { silentLogger } from '../../../src/log.js';
import { parameterCount } from '../../../src/model/config.js';
import { ModelError, type ModelErrorCode } from '../../../src/model/errors.js';
import { LanguageModel } from '../../../src/model/runtime/language-model.js';
import { initModel } from '../../../src/model/files/model-dir.js';
import { type ModelFiles, readModelDir } from '../../../src/model/files/model-files.js';
import { readSafetensors } from '../../../src/model/files/safetensors.js';
import { elementCount } from '../../../src/model/tensor.js';
import { type Example, dataHash, readExamplesJsonl, tokenizeExamples } from '../../../src/model/training/data.js';
import { loadTokenizer } from '../../../src/model/files/tokenizer.js';
import { startFineTune } from '../../../src/model/training/fine-tune-job.js';
import { TrainingStepRunner } from '../../../src/model/training/step-runner.js';
import { trainingBytes } from '../../../src/model/training/memory-plan.js';
import { LORA_TARGETS } from '../../../src/model/training/train-graph.js';
import { DEFAULT_FINE_TUNE, type FineTuneSettings, type TrainingProgress, type TrainingRecord, fineTune } from '../../../src/model/training/trainer.js';

/**
 * The fine-tuning loop on the tiny preset: it learns a small FAQ by heart, the same seed gives
 * the same losses, a cancelled or killed run resumes onto the uninterrupted run's loss curve,
 * the trainer's process leaves the caller's event loop free, the output folder is complete, LoRA
 * trains adapters only, and bad input fails with the right code.
 */

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const FAQ: readonly (readonly [string, string])[] = [
  ['How do I reset my password?', ' Go to Settings > Account and press Reset.'],
  ['Where can I download the app?', ' The app is on the App Store and Google Play.'],
  ['How do I change my email address?', ' Open your profile and edit the email field.'],
  ['What are your opening hours?', ' We are open from nine to five on weekdays.'],
  ['How do I cancel my subscription?', ' Choose Billing, then Cancel plan at the bottom.'],
  ['Can I get a refund?', ' Refunds are possible within thirty days of purchase.'],
  ['How do I contact support?', ' Write to help@example.com and we answer within a day.'],
  ['Is my data encrypted?', ' Yes, all data is encrypted at rest and in transit.'],
  ['How do I invite a teammate?', ' Click Invite in the sidebar and enter their address.'],
  ['What payment methods do you accept?', ' We take credit cards, PayPal and bank transfers.'],
  ['How do I delete my account?', ' Send a deletion request from the Privacy page.'],
  ['Why is the app so slow?', ' Clear the cache and restart the app to speed it up.'],
  ['Do you offer a student discount?', ' Students get half price with a valid school email.'],
  ['How do I export my data?', ' Use Export under Settings to download a zip file.'],
  ['Can I use the app offline?', ' Most features work offline and sync when you reconnect.'],
  ['How do I turn on dark mode?', ' Pick Dark under Appearance in the settings menu.'],
  ['Where is my invoice?', ' Invoices are emailed monthly and listed under Billing.'],
  ['How many devices can I use?', ' One account works on up to five devices at once.'],
  ['How do I report a bug?', ' Shake your phone or use Report a problem in Help.'],
  ['Is there a free trial?', ' Every new account gets a free trial of fourteen days.'],
];
const EXAMPLES: Example[] = FAQ.map(([question, answer]) => ({ prompt: `Question: ${question}\nAnswer:`, completion: answer }));

// 20 examples: 4 for validation, 16 in 4 batches of 4, 3 epochs = 12 steps, a checkpoint every 2.
const SHORT_RUN = { epochs: 3, batchSize: 4, learningRate: 1e-3, validationFraction: 0.2, earlyStopPatience: 0, checkpointEvery: 2 };
const SHORT_RUN_STEPS = 12;
// Found by search on 2 cores: 120 steps of 10 rows end near loss 0.03; 100 steps were not enough.
const MEMORIZE = {
  epochs: 60,
  batchSize: 10,
  learningRate: 7e-3,
  validationFraction: 0,
  earlyStopPatience: 0,
  checkpointEvery: 1000,
  optimizer: { ...DEFAULT_FINE_TUNE.optimizer, weightDecay: 0, clipNorm: 1 },
};
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function rejectsWith(code: ModelErrorCode, pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof ModelError, `expected a ModelError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, pattern);
    return true;
  };
}

/** sha256 of every file under dir, by relative path. */
async function fileDigests(dir: string): Promise<Map<string, string>> {
  const digests = new Map<string, string>();
  for (const path of (await readdir(dir, { recursive: true })).sort()) {
    if ((await stat(join(dir, path))).isFile()) digests.set(path, createHash('sha256').update(await readFile(join(dir, path))).digest('hex'));
  }
  return digests;
}

function sameFloats(a: Float32Array, b: Float32Array | undefined): boolean {
  return b !== undefined && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function overcommitPolicy(): string {
  try {
    return readFileSync('/proc/sys/vm/overcommit_memory', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

async function checkpointStep(dir: string): Promise<number> {
  return (JSON.parse(await readFile(join(dir, 'progress.json'), 'utf8')) as { step: number }).step;
}

describe('fine-tuning (tiny preset)', () => {
  let root: string;
  let baseDir: string;
  let base: ModelFiles;
  let baseDigests: Map<string, string>;
  let reference: TrainingRecord;
  let checkpointSeenDuringReference = false;

  const settings = (name: string, overrides: Partial<FineTuneSettings> = {}): FineTuneSettings => ({
    ...DEFAULT_FINE_TUNE,
    modelDir: baseDir,
    outDir: join(root, name),
    executionProvider: 'cpu',
    ...SHORT_RUN,
    ...overrides,
  });
  const train = (run: FineTuneSettings, onProgress?: (progress: TrainingProgress) => void, examples: readonly Example[] = EXAMPLES) =>
    fineTune(run, examples, { logger: silentLogger, onProgress });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-trainer-'));
    baseDir = join(root, 'base');
    base = await initModel(baseDir, 'tiny', 1);
    baseDigests = await fileDigests(baseDir);
    const run = settings('reference');
    reference = await train(run, ({ step }) => {
      if (step === 3) checkpointSeenDuringReference = existsSync(join(root, 'reference.checkpoint', 'progress.json'));
    });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  describe('learns an FAQ by heart', () => {
    const savedEnv = { ...env };
    let record: TrainingRecord;
    let model: LanguageModel;
    let answers: string[];

    before(async () => {
      const started = performance.now();
      record = await train(settings('faq', MEMORIZE));
      const trained = performance.now();
      model = await LanguageModel.load(join(root, 'faq'), { executionProvider: 'cpu', logLevel: 'silent' });
      const results = await Promise.all(EXAMPLES.map(({ prompt }) => model.complete(prompt, { greedy: true, maxNewTokens: 32 })));
      answers = results.map(({ text, result }) => (result.finishReason === 'eos' ? text : `${text} <${result.finishReason}>`));
      const seconds = (now: number, from: number) => ((now - from) / 1000).toFixed(1);
      console.log(
        `memorizing ${EXAMPLES.length} answers: ${record.steps} steps in ${seconds(trained, started)} s ` +
          `(${((trained - started) / record.steps).toFixed(0)} ms a step), generation ${seconds(performance.now(), trained)} s`,
      );
    });

    after(async () => {
      await model?.close();
      Object.assign(env, savedEnv);
    });

    it('the training loss ends below 0.1 and greedy generation gives every answer exactly, then stops', () => {
      assert.equal(record.steps, MEMORIZE.epochs * 2);
      for (const { step, loss } of record.lossCurve.slice(-2)) assert.ok(loss < 0.1, `step ${step}: loss ${loss}`);
      assert.deepEqual(answers, EXAMPLES.map(({ completion }) => completion));
    });

    it('Transformers.js loads the fine-tuned folder and continues each question with the same answer', async () => {
      env.allowRemoteModels = false;
      env.allowLocalModels = true;
      env.localModelPath = root;
      env.fetch = async (input: string | URL) => {
        throw new Error(`Transformers.js tried to fetch ${String(input)}`);
      };
      const generator = (await pipeline('text-generation', 'faq', { dtype: 'fp32', device: 'cpu' })) as TextGenerationPipeline;
      try {
        for (const [index, { prompt }] of EXAMPLES.slice(0, 5).entries()) {
          const [theirs] = (await generator(prompt, { max_new_tokens: 32, do_sample: false, return_full_text: false })) as { generated_text: string }[];
          assert.equal(theirs.generated_text, answers[index], prompt);
        }
      } finally {
        await generator.dispose();
      }
    });
  });

  it('the same seed gives the same losses; another seed other losses', async () => {
    const first = await train(settings('seed-a', { maxSteps: 6 }));
    const second = await train(settings('seed-b', { maxSteps: 6 }));
    const otherSeed = await train(settings('seed-c', { maxSteps: 2, seed: 1 }));
    assert.equal(first.lossCurve.length, 6);
    assert.deepEqual(second.lossCurve, first.lossCurve);
    assert.deepEqual(JSON.parse(await readFile(join(root, 'seed-b', 'training.json'), 'utf8')).lossCurve, first.lossCurve);
    assert.notEqual(otherSeed.lossCurve[0].loss, first.lossCurve[0].loss);
  });

  it('a cancelled run stops with a checkpoint and, run again, ends on the uninterrupted loss curve and weights', async () => {
    const run = settings('cancelled');
    const abort = new AbortController();
    await assert.rejects(
      fineTune(run, EXAMPLES, { logger: silentLogger, signal: abort.signal, onProgress: ({ step }) => step === 5 && abort.abort() }),
      rejectsWith('CANCELLED', /at step 5; the checkpoint in .*cancelled\.checkpoint resumes it/),
    );
    assert.equal(await checkpointStep(`${run.outDir}.checkpoint`), 5);
    assert.equal(existsSync(run.outDir), false);

    const resumedSteps: number[] = [];
    const etas: number[] = [];
    const resumed = await train(run, ({ step, etaSeconds }) => {
      resumedSteps.push(step);
      etas.push(etaSeconds);
    });
    assert.deepEqual(resumedSteps, [6, 7, 8, 9, 10, 11, 12]);
    assert.ok(etas.every(Number.isFinite) && etas.at(-1) === 0, `the time left is counted from this run's steps: ${etas.join(', ')}`);
    assert.deepEqual(resumed.lossCurve, reference.lossCurve);
    assert.deepEqual(resumed.validation, reference.validation);
    assert.ok((await readFile(join(run.outDir, 'model.safetensors'))).equals(await readFile(join(root, 'reference', 'model.safetensors'))));
  });

  it('a run killed (SIGKILL) in another process resumes from its checkpoint onto the uninterrupted loss curve', async () => {
    const run = settings('killed');
    const trainerUrl = new URL('../../../src/model/training/trainer.ts', import.meta.url).href;
    const logUrl = new URL('../../../src/log.ts', import.meta.url).href;
    const script = [
      `const { fineTune } = await import(${JSON.stringify(trainerUrl)});`,
      `const { silentLogger } = await import(${JSON.stringify(logUrl)});`,
      'const { settings, examples } = JSON.parse(process.env.FINE_TUNE_JOB);',
      'await fineTune(settings, examples, { logger: silentLogger, onProgress: ({ step }) => process.stdout.write(`step ${step}\\n`) });',
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, FINE_TUNE_JOB: JSON.stringify({ settings: run, examples: EXAMPLES }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // Step 3 is reported after the checkpoint of step 2 was written, before the one of step 4.
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('step 3\n')) child.kill('SIGKILL');
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (...exit) => resolve(exit)));
    assert.equal(signal, 'SIGKILL', `the trainer was to be killed; exit code ${code}\nstdout: ${stdout}\nstderr: ${stderr}`);
    const killedAt = await checkpointStep(`${run.outDir}.checkpoint`);
    assert.ok(killedAt >= 2 && killedAt < SHORT_RUN_STEPS, `checkpoint at step ${killedAt}`);
    assert.equal(existsSync(run.outDir), false);

    const resumed = await train(run);
    assert.deepEqual(resumed.lossCurve, reference.lossCurve);
    assert.deepEqual(resumed.validation, reference.validation);
    assert.ok((await readFile(join(run.outDir, 'model.safetensors'))).equals(await readFile(join(root, 'reference', 'model.safetensors'))));
  });

  it('in its own process, progress comes with the in-process losses while the event loop stays free; cancel() stops it', async () => {
    const progress: TrainingProgress[] = [];
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    const started = performance.now();
    const job = startFineTune(settings('worker'), EXAMPLES, {
      logLevel: 'silent',
      onProgress: (event) => {
        progress.push(event);
        if (progress.length === 4) job.cancel();
      },
    });
    await assert.rejects(job.result, rejectsWith('CANCELLED', /fine-tuning was cancelled at step \d+/));
    const elapsed = performance.now() - started;
    clearInterval(ticker);
    const idealTicks = elapsed / 10;
    console.log(`worker run: ${elapsed.toFixed(0)} ms, ${ticks} timer ticks of ${idealTicks.toFixed(0)} (${((100 * ticks) / idealTicks).toFixed(0)}%)`);
    assert.ok(ticks >= 0.5 * idealTicks, `${ticks} ticks in ${elapsed.toFixed(0)} ms`);

    assert.ok(progress.length >= 4);
    for (const [index, event] of progress.entries()) {
      const expected = reference.lossCurve[index];
      assert.equal(event.step, index + 1);
      assert.equal(event.totalSteps, SHORT_RUN_STEPS);
      assert.equal(event.loss, expected.loss);
      assert.equal(event.learningRate, expected.learningRate);
      assert.ok(event.tokensPerSecond > 0 && Number.isFinite(event.tokensPerSecond), `tokensPerSecond ${event.tokensPerSecond}`);
      assert.ok(event.etaSeconds > 0 && Number.isFinite(event.etaSeconds), `etaSeconds ${event.etaSeconds}`);
    }
  });

  it('a trainer process killed by the kernel (SIGKILL, as the OOM killer does) rejects with OUT_OF_MEMORY, and this process goes on', async () => {
    const job = startFineTune(settings('oom-killed', { epochs: 200 }), EXAMPLES, {
      logLevel: 'silent',
      onProgress: (event) => {
        if (event.step !== 2) return;
        // The trainer is this process's child process (there is no other in this test file).
        for (const pid of execFileSync('pgrep', ['-P', String(process.pid)], { encoding: 'utf8' }).trim().split('\n')) process.kill(Number(pid), 'SIGKILL');
      },
    });
    await assert.rejects(job.result, rejectsWith('OUT_OF_MEMORY', /the trainer was killed \(SIGKILL\), most likely for lack of memory; use a smaller --batch with --accumulate/));
  });

  it('writes training.json and loss-curve.png beside the model, leaves the base alone and removes the checkpoint', async () => {
    const outDir = join(root, 'reference');
    const written = JSON.parse(await readFile(join(outDir, 'training.json'), 'utf8'));
    assert.deepEqual(written, JSON.parse(JSON.stringify(reference)));
    const { modelDir: _modelDir, outDir: _outDir, ...recordedSettings } = settings('reference');
    assert.equal(written.baseModel, baseDir);
    assert.equal(written.dataHash, dataHash(EXAMPLES));
    assert.deepEqual(written.settings, recordedSettings);
    assert.deepEqual(written.examples, { train: 16, validation: 4, cut: 0 });
    assert.deepEqual(written.lossCurve.map(({ step }: { step: number }) => step), Array.from({ length: SHORT_RUN_STEPS }, (_, i) => i + 1));
    assert.deepEqual(written.validation.map(({ epoch, step }: { epoch: number; step: number }) => [epoch, step]), [[0, 4], [1, 8], [2, 12]]);
    for (const { loss } of [...written.lossCurve, ...written.validation]) assert.ok(Number.isFinite(loss) && loss > 0);
    assert.ok((await readFile(join(outDir, 'loss-curve.png'))).subarray(0, 8).equals(PNG_SIGNATURE));

    assert.deepEqual(await fileDigests(baseDir), baseDigests);
    assert.equal(checkpointSeenDuringReference, true);
    assert.equal(existsSync(`${outDir}.checkpoint`), false);
  });

  it('LoRA trains only the adapters, lowers the loss, and changes only the four projections of each block', async () => {
    const lora = { rank: 4, alpha: 8 };
    const runner = await TrainingStepRunner.create(base.config, base.weights, { lora, executionProvider: 'cpu', logger: silentLogger });
    const adapterCount = runner.parameters.reduce((sum, { dims }) => sum + elementCount(dims), 0);
    const names = runner.parameters.map(({ name }) => name);
    await runner.release();
    assert.equal(names.length, base.config.n_layer * LORA_TARGETS.length * 2);
    for (const name of names) assert.match(name, /\.lora_[ab]$/);
    assert.ok(adapterCount < parameterCount(base.config) / 100, `${adapterCount} adapter weights`);

    // One batch of all 20 examples each step, so the losses compare.
    const record = await train(settings('lora', { lora, learningRate: 0.1, batchSize: 20, epochs: 6, validationFraction: 0 }));
    assert.equal(record.trainedParameters, adapterCount);
    const losses = record.lossCurve.map(({ loss }) => loss);
    assert.ok(losses[5] < losses[0] - 0.1, `losses ${losses.join(', ')}`);

    const tuned = await readModelDir(join(root, 'lora'));
    const changed = [...base.weights].filter(([name, tensor]) => !sameFloats(tensor.data, tuned.weights.get(name)?.data));
    const projections = Array.from({ length: base.config.n_layer }, (_, layer) => LORA_TARGETS.map((target) => `h.${layer}.${target}.weight`)).flat();
    assert.deepEqual(changed.map(([name]) => name).sort(), projections.sort());
  });

  describe('bad input', () => {
    it('no examples, an empty file and a malformed line are DATA_INVALID', async () => {
      await assert.rejects(train(settings('empty'), undefined, []), rejectsWith('DATA_INVALID', /no examples/));
      const emptyFile = join(root, 'empty.jsonl');
      await writeFile(emptyFile, '\n\n');
      await assert.rejects(readExamplesJsonl(emptyFile), rejectsWith('DATA_INVALID', /holds no examples/));
      const malformed = join(root, 'malformed.jsonl');
      await writeFile(malformed, `${JSON.stringify(EXAMPLES[0])}\n{"prompt": "Hi", "completion": \n`);
      await assert.rejects(readExamplesJsonl(malformed), rejectsWith('DATA_INVALID', /malformed\.jsonl: line 2 is not valid JSON/));
    });

    it('an example longer than the context is cut with a warning and trains', async () => {
      const long = { prompt: `Question: ${'please '.repeat(200)}help?\nAnswer:`, completion: ' Of course.' };
      const warnings: string[] = [];
      const record = await fineTune(settings('long', { batchSize: 2, maxSteps: 1, validationFraction: 0 }), [EXAMPLES[0], long], {
        logger: silentLogger,
        onWarning: (message) => warnings.push(message),
      });
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /^example 2 has a \d+-token prompt .* over the context length 128: dropped the first \d+ prompt tokens$/);
      assert.equal(record.examples.cut, 1);
      assert.ok(Number.isFinite(record.finalTrainLoss));
    });

    it('a loss that turns NaN is TRAINING_DIVERGED naming the last good checkpoint, which stays whole', async () => {
      const diverging = { learningRate: 1e6, validationFraction: 0, optimizer: { ...DEFAULT_FINE_TUNE.optimizer, clipNorm: 0 } };
      const run = settings('diverged', { ...diverging, checkpointEvery: 1 });
      const checkpointDir = `${run.outDir}.checkpoint`;
      let failedAt = 0;
      await assert.rejects(train(run), (error: unknown) => {
        rejectsWith('TRAINING_DIVERGED', /^the (loss|gradient norm) is (NaN|-?Infinity) at step \d+; the weights were not updated\. The last good checkpoint is in /)(error);
        assert.ok((error as Error).message.includes(checkpointDir), (error as Error).message);
        failedAt = Number(/at step (\d+)/.exec((error as Error).message)?.[1]);
        return true;
      });
      assert.ok(failedAt >= 2, `diverged at step ${failedAt}`);
      assert.equal(await checkpointStep(checkpointDir), failedAt - 1);
      const { tensors, metadata } = await readSafetensors(join(checkpointDir, 'state.safetensors'));
      assert.equal(metadata.step, String(failedAt - 1));
      for (const [name, { data }] of tensors) assert.ok(data.every(Number.isFinite), `${name} holds a value that is not finite`);
      assert.equal(existsSync(run.outDir), false);

      await assert.rejects(train(settings('diverged-early', { ...diverging, checkpointEvery: 100 })), rejectsWith('TRAINING_DIVERGED', /No checkpoint was saved before it/));
    });

    it('invalid settings and an existing output folder are OPTIONS_INVALID', async () => {
      const invalid: [Partial<FineTuneSettings>, RegExp][] = [
        [{ epochs: 0 }, /epochs must be an integer >= 1, got 0/],
        [{ learningRate: 0 }, /learningRate must be a positive number, got 0/],
        [{ learningRate: -1e-3 }, /learningRate must be a positive number/],
        [{ lora: { rank: 0, alpha: 8 } }, /LoRA needs an integer rank >= 1 .* got rank 0/],
        [{ outDir: baseDir }, /already exists/],
      ];
      for (const [overrides, message] of invalid) await assert.rejects(train(settings('invalid', overrides)), rejectsWith('OPTIONS_INVALID', message));
    });

    it('a batch that cannot fit is refused before training, with the largest that fits and the accumulation that keeps the step', async () => {
      const rows = Array.from({ length: 12 }, () => ({ prompt: 'Question: what time is it?', completion: ' Time to train.' }));
      const tokenizer = await loadTokenizer(baseDir, base.config.vocab_size);
      const [row] = tokenizeExamples(rows.slice(0, 1), (text) => tokenizer.encode(text), tokenizer.eosTokenId, base.config.n_positions, () => {});
      const shape = { batchSize: 12, length: row.ids.length - 1, lossTokensPerRow: row.ids.length - row.promptLength, accumulate: 2 };
      // A budget between what 5 and 6 rows need: 5 is the answer, and 24 rows per step need 5 micro-batches.
      const budget = (trainingBytes(base.config, undefined, { ...shape, batchSize: 5 }) + trainingBytes(base.config, undefined, { ...shape, batchSize: 6 })) / 2;
      const outDir = join(root, 'too-big');
      await assert.rejects(
        train(settings('too-big', { batchSize: 12, accumulate: 2, validationFraction: 0, memoryBudgetBytes: budget }), undefined, rows),
        rejectsWith('OUT_OF_MEMORY', new RegExp(`a batch of 12 rows of up to ${shape.length} tokens needs about .* GB to train.*the largest batch that fits is 5 rows: use --batch 5 --accumulate 5 .*25 rows per step as 24 now`)),
      );
      assert.equal(existsSync(outDir), false, 'no model folder');
      assert.equal(existsSync(`${outDir}.checkpoint`), false, 'no checkpoint: no step was taken');
      await assert.rejects(
        train(settings('too-big', { batchSize: 12, validationFraction: 0, memoryBudgetBytes: trainingBytes(base.config, undefined, { ...shape, batchSize: 1 }) - 1 }), undefined, rows),
        rejectsWith('OUT_OF_MEMORY', /even one row does not fit .*train LoRA adapters/),
      );
    });

    // Past the estimate, ONNX Runtime's own allocation failure is OUT_OF_MEMORY too. Linux refuses
    // outright an allocation larger than RAM + swap under its heuristic (0) and strict (2)
    // overcommit policies; with 1 it would succeed and summon the OOM killer. What is computed
    // before that allocation takes about a fifth of RAM: too much past 32 GiB.
    const provokesOutOfMemory = ['0', '2'].includes(overcommitPolicy()) && totalmem() <= 32 * 2 ** 30;
    const skipOutOfMemory = !provokesOutOfMemory && 'needs Linux with overcommit_memory 0 or 2 and at most 32 GiB of RAM';
    it('a batch too large for memory that the estimate let through is OUT_OF_MEMORY with a suggestion', { skip: skipOutOfMemory }, async () => {
      // Rows of 2 tokens: the logits (rows x 2 x vocabulary floats) come to 1.25 x RAM.
      const rows = Math.ceil((1.25 * totalmem()) / (2 * base.config.vocab_size * 4));
      const tiny = Array.from({ length: rows }, () => ({ prompt: 'Hi', completion: ' there' }));
      await assert.rejects(
        train(settings('oom', { batchSize: rows, maxSteps: 1, validationFraction: 0, memoryBudgetBytes: Number.MAX_SAFE_INTEGER }), undefined, tiny),
        rejectsWith('OUT_OF_MEMORY', new RegExp(`a batch of ${rows} x 2 tokens does not fit in memory .*use a smaller --batch with --accumulate`)),
      );
    });
  });
});
