import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { presetConfig } from '../../../src/model/config.js';
import { ModelError, type ModelErrorCode } from '../../../src/model/errors.js';
import type { GenerationResult } from '../../../src/model/generation/scheduler.js';
import { type GenerateOptions, LanguageModel } from '../../../src/model/runtime/language-model.js';
import { initModel, saveModel } from '../../../src/model/files/model-dir.js';
import { defaultGenerationConfig } from '../../../src/model/files/model-files.js';
import { type Tokenizer, loadTokenizer } from '../../../src/model/files/tokenizer.js';
import { initWeights } from '../../../src/model/files/weights.js';

const loadOptions = { executionProvider: 'cpu', logLevel: 'silent' } as const;

let root: string;
let tinyDir: string;
let tokenizer: Tokenizer;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tunebot-language-model-'));
  tinyDir = join(root, 'tiny');
  await initModel(tinyDir, 'tiny', 1234);
  tokenizer = await loadTokenizer(tinyDir);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function isModelError(code: ModelErrorCode, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof ModelError, `expected a ModelError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}

async function collect(stream: AsyncIterable<string>): Promise<string[]> {
  const pieces: string[] = [];
  for await (const piece of stream) pieces.push(piece);
  return pieces;
}

describe('LanguageModel on a tiny random model', () => {
  let model: LanguageModel;
  before(async () => {
    model = await LanguageModel.load(tinyDir, loadOptions);
  });
  after(async () => {
    await model.close();
  });

  it('streams pieces whose concatenation is complete()\'s text', async () => {
    assert.equal(model.info.provider, 'cpu');
    const prompt = 'Question: how do I reset my password?\nAnswer:';
    const options = { seed: 5, maxNewTokens: 30 };
    const stream = model.generate(prompt, options);
    const pieces = await collect(stream);
    const result = await stream.result;
    assert.ok(pieces.length > 1, 'text arrives piece by piece');
    assert.deepEqual(result, { finishReason: 'length', promptTokens: tokenizer.encode(prompt).length, generatedTokens: 30 });
    const whole = await model.complete(prompt, options);
    assert.equal(pieces.join(''), whole.text);
    assert.deepEqual(whole.result, result);
  });

  it('replays the same text for the same seed; greedy is deterministic', async () => {
    const prompt = 'Once upon a time';
    const first = await model.complete(prompt, { seed: 42, maxNewTokens: 25 });
    assert.deepEqual(await model.complete(prompt, { seed: 42, maxNewTokens: 25 }), first);
    assert.notEqual((await model.complete(prompt, { seed: 43, maxNewTokens: 25 })).text, first.text);
    const greedy = await model.complete(prompt, { greedy: true, maxNewTokens: 25 });
    assert.deepEqual(await model.complete(prompt, { temperature: 0, maxNewTokens: 25, seed: 7 }), greedy);
  });

  it('gives concurrent requests exactly the texts they get alone', async () => {
    const requests: [string, GenerateOptions][] = [
      ['The quick brown fox', { greedy: true, maxNewTokens: 40 }],
      ['Hello', { seed: 1, maxNewTokens: 40 }],
      ['A much longer prompt with quite a few tokens in it, so that the batch is ragged', { seed: 2, temperature: 0.7, maxNewTokens: 30 }],
      ['x', { seed: 3, topK: 5, maxNewTokens: 50 }],
      ['Question: what?', { seed: 4, topP: 0.9, temperature: 1.3, maxNewTokens: 25 }],
      ['Once upon a time', { greedy: true, repetitionPenalty: 1.3, maxNewTokens: 45 }],
      ['1 2 3 4', { seed: 5, topK: 0, maxNewTokens: 12 }],
      ['日本語のテキスト', { seed: 6, repetitionPenalty: 1.2, topK: 20, maxNewTokens: 40 }],
    ];
    const alone: { text: string; result: GenerationResult }[] = [];
    for (const [prompt, options] of requests) alone.push(await model.complete(prompt, options));
    const together = await Promise.all(requests.map(([prompt, options]) => model.complete(prompt, options)));
    requests.forEach(([prompt, options], i) => assert.deepEqual(together[i], alone[i], `${JSON.stringify(prompt)} ${JSON.stringify(options)}`));
  });

  it('gives a request that joins a running batch the text it gets alone', async () => {
    const first: [string, GenerateOptions] = ['Once upon a time there was', { seed: 11, maxNewTokens: 80 }];
    const joiner: [string, GenerateOptions] = ['Support ticket #42:', { seed: 12, temperature: 0.8, maxNewTokens: 30 }];
    const firstAlone = await model.complete(...first);
    const joinerAlone = await model.complete(...joiner);

    const running = model.generate(...first);
    let runningEnded = false;
    running.result.then(
      () => (runningEnded = true),
      () => undefined,
    );
    let joined: Promise<{ text: string }> | undefined;
    let text = '';
    for await (const piece of running) {
      text += piece;
      if (!joined) {
        assert.equal(runningEnded, false, 'the first request is still decoding when the second arrives');
        joined = model.complete(...joiner);
      }
    }
    assert.equal(text, firstAlone.text);
    assert.deepEqual(await joined, joinerAlone);
  });

  it('ends at a stop string, emitting only the text before it', async () => {
    const prompt = 'User: hi\nBot:';
    const full = await model.complete(prompt, { seed: 21, maxNewTokens: 40 });
    const start = Math.floor(full.text.length / 2);
    const stop = full.text.slice(start, start + 4);
    assert.doesNotMatch(stop, /\uFFFD|[\uD800-\uDFFF]/, 'the chosen stop is whole characters');
    const stopped = await model.complete(prompt, { seed: 21, maxNewTokens: 40, stop: ['never in this text', stop] });
    assert.equal(stopped.text, full.text.slice(0, full.text.indexOf(stop)));
    assert.equal(stopped.result.finishReason, 'stop');
    assert.ok(stopped.result.generatedTokens < 40);

    const unmatched = await model.complete(prompt, { seed: 21, maxNewTokens: 40, stop: ['never in this text'] });
    assert.deepEqual(unmatched, full);
  });

  it('respects maxNewTokens and ends at the context length', async () => {
    const prompt = 'The refund policy';
    const long = await model.complete(prompt, { seed: 8, maxNewTokens: 30 });
    for (const maxNewTokens of [1, 7]) {
      const short = await model.complete(prompt, { seed: 8, maxNewTokens });
      assert.deepEqual(short.result, { finishReason: 'length', promptTokens: 3, generatedTokens: maxNewTokens });
      assert.ok(long.text.startsWith(short.text));
    }
    const toTheEnd = await model.complete(prompt, { seed: 8, maxNewTokens: 500 });
    assert.equal(toTheEnd.result.finishReason, 'context');
    assert.equal(toTheEnd.result.promptTokens + toTheEnd.result.generatedTokens, model.info.config.n_positions);
  });

  it('aborts one request mid-generation and leaves the others running', async () => {
    const other: [string, GenerateOptions] = ['Another user asks', { seed: 32, maxNewTokens: 60 }];
    const otherAlone = await model.complete(...other);
    const controller = new AbortController();
    const aborted = model.generate('Tell me a long story', { seed: 31, maxNewTokens: 100, signal: controller.signal });
    const concurrent = model.complete(...other);
    const received: string[] = [];
    await assert.rejects(async () => {
      for await (const piece of aborted) {
        received.push(piece);
        if (received.length === 3) controller.abort();
      }
    }, isModelError('ABORTED'));
    await assert.rejects(aborted.result, isModelError('ABORTED'));
    assert.ok(received.length < 100);
    assert.deepEqual(await concurrent, otherAlone);
  });

  it('cancels a request whose reader stops early, as a client that went away', async () => {
    const stream = model.generate('Tell me a long story', { seed: 33, maxNewTokens: 100 });
    let read = 0;
    for await (const _piece of stream) if (++read === 3) break;
    await assert.rejects(stream.result, isModelError('ABORTED'));
    // The worker took the cancel: the model serves the next request as usual.
    assert.equal((await model.complete('Hi', { seed: 1, maxNewTokens: 4 })).result.generatedTokens, 4);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const started = performance.now();
    const stream = model.generate('Hi', { signal: AbortSignal.abort() });
    await assert.rejects(collect(stream), isModelError('ABORTED'));
    await assert.rejects(stream.result, isModelError('ABORTED'));
    assert.ok(performance.now() - started < 100);
  });

  it('keeps the event loop free while it generates', async () => {
    const prompt = 'The customer wrote a long message about a delayed order and a missing refund, asking what to do next. ';
    assert.ok(tokenizer.encode(prompt.repeat(2)).length >= 40);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const started = performance.now();
    try {
      while (performance.now() - started < 1000) {
        // topK 0 samples from the whole vocabulary, tens of milliseconds per token: were the
        // decode steps run on this thread, four such sequences would hold it ~100 ms per step.
        await Promise.all([0, 1, 2, 3].map((seed) => model.complete(prompt.repeat(2), { seed, topK: 0, maxNewTokens: 12 })));
      }
    } finally {
      clearInterval(timer);
    }
    const ideal = (performance.now() - started) / 10;
    assert.ok(ticks >= 0.5 * ideal, `${ticks} timer ticks, ideally ${ideal.toFixed(0)}`);
  });

  it('starts an empty prompt from <|endoftext|>', async () => {
    const empty = await model.complete('', { seed: 3, maxNewTokens: 8 });
    assert.deepEqual(empty.result, { finishReason: 'length', promptTokens: 1, generatedTokens: 8 });
    assert.ok(empty.text.length > 0);
    assert.deepEqual(await model.complete([tokenizer.eosTokenId], { seed: 3, maxNewTokens: 8 }), empty);
  });

  it('cuts a 100,000-character prompt from the left and still generates', async () => {
    const prompt = 'The user asked about the refund policy again. '.repeat(3000).slice(0, 100_000);
    const kept = model.info.config.n_positions - 16;
    const cut = await model.complete(prompt, { seed: 4, maxNewTokens: 16 });
    assert.deepEqual(cut.result, { finishReason: 'length', promptTokens: kept, generatedTokens: 16 });
    assert.deepEqual(await model.complete(tokenizer.encode(prompt).slice(-kept), { seed: 4, maxNewTokens: 16 }), cut);
  });

  it('rejects invalid options and out-of-vocabulary prompt ids with OPTIONS_INVALID', async () => {
    const invalid: [string | number[], GenerateOptions, RegExp][] = [
      ['hi', { topP: 2 }, /topP must be in \(0, 1\]/],
      ['hi', { maxNewTokens: 0 }, /maxNewTokens/],
      ['hi', { stop: [''] }, /non-empty/],
      [[1, 50257], {}, /50257 is outside the vocabulary \[0, 50257\)/],
      [[-1], {}, /outside the vocabulary/],
      [[1.5], {}, /outside the vocabulary/],
    ];
    for (const [prompt, options, message] of invalid) {
      const stream = model.generate(prompt, options);
      await assert.rejects(collect(stream), isModelError('OPTIONS_INVALID', message));
      await assert.rejects(stream.result, isModelError('OPTIONS_INVALID', message));
    }
    assert.equal((await model.complete('still works', { seed: 1, maxNewTokens: 3 })).result.generatedTokens, 3);
  });

  it('fails running requests with WORKER_FAILED on close, and refuses new ones', async () => {
    const running = model.generate('Hello', { seed: 9, maxNewTokens: 100 });
    const queued = model.generate('Hi', { seed: 10, maxNewTokens: 100 });
    const iterator = running[Symbol.asyncIterator]();
    assert.equal((await iterator.next()).done, false);
    const closing = model.close();
    await assert.rejects(collect({ [Symbol.asyncIterator]: () => iterator }), isModelError('WORKER_FAILED'));
    await assert.rejects(queued.result, isModelError('WORKER_FAILED'));
    await closing;
    await assert.rejects(model.complete('after close'), isModelError('WORKER_FAILED', /closed/));
  });
});

describe('LanguageModel on a model built to prefer <|endoftext|>', () => {
  // ln_f maps every hidden state to the unit vector e0, so logit[v] = wte[v][0] whatever the
  // input: " hello" scores 10, <|endoftext|> 9, everything else 0.
  let model: LanguageModel;
  let hello: number;
  before(async () => {
    const config = presetConfig('tiny');
    const weights = initWeights(config, 5);
    const width = config.n_embd;
    weights.get('ln_f.weight')!.data.fill(0);
    weights.get('ln_f.bias')!.data.fill(0)[0] = 1;
    const wte = weights.get('wte.weight')!.data;
    for (let v = 0; v < config.vocab_size; v++) wte[v * width] = 0;
    [hello] = tokenizer.encode(' hello');
    wte[hello * width] = 10;
    wte[config.eos_token_id * width] = 9;
    const dir = join(root, 'prefers-eos');
    await saveModel(dir, { config, weights, generationConfig: defaultGenerationConfig(config) });
    model = await LanguageModel.load(dir, loadOptions);
  });
  after(async () => {
    await model.close();
  });

  it('ends with finishReason eos once the penalty pushes " hello" below <|endoftext|>', async () => {
    // A penalty of 2 turns the seen " hello" into 5 < 9.
    const ended = await model.complete('Say', { greedy: true, repetitionPenalty: 2, maxNewTokens: 10 });
    assert.deepEqual(ended, { text: ' hello', result: { finishReason: 'eos', promptTokens: 1, generatedTokens: 2 } });
    const unpenalized = await model.complete('Say', { greedy: true, maxNewTokens: 5 });
    assert.deepEqual(unpenalized, { text: ' hello'.repeat(5), result: { finishReason: 'length', promptTokens: 1, generatedTokens: 5 } });
  });

  it('lets the rest of a batch go on after one sequence ends at eos', async () => {
    const requests: GenerateOptions[] = [
      { greedy: true, maxNewTokens: 6 },
      { greedy: true, repetitionPenalty: 2, maxNewTokens: 6 },
      { seed: 1, temperature: 0.5, maxNewTokens: 6 },
    ];
    const alone: { text: string; result: GenerationResult }[] = [];
    for (const options of requests) alone.push(await model.complete('Say', options));
    assert.equal(alone[1].result.finishReason, 'eos');
    assert.deepEqual(await Promise.all(requests.map((options) => model.complete('Say', options))), alone);
  });
});

describe('LanguageModel.load failures', () => {
  /** A copy of the tiny model folder (weights linked, not copied) with some files replaced. */
  async function variant(name: string, replace: Record<string, string>): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir);
    for (const file of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
      if (file in replace) await writeFile(join(dir, file), replace[file]);
      else await symlink(join(tinyDir, file), join(dir, file));
    }
    return dir;
  }

  it('rejects a missing folder with MODEL_NOT_FOUND', async () => {
    await assert.rejects(LanguageModel.load(join(root, 'no-such-model'), loadOptions), isModelError('MODEL_NOT_FOUND', /no model at/));
  });

  it('rejects a config.json that disagrees with the weights with WEIGHTS_MISMATCH', async () => {
    const config = JSON.parse(await readFile(join(tinyDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const dir = await variant('wider-config', { 'config.json': JSON.stringify({ ...config, n_embd: 128 }) });
    await assert.rejects(LanguageModel.load(dir, loadOptions), isModelError('WEIGHTS_MISMATCH'));
  });

  it('rejects a corrupt tokenizer.json with TOKENIZER_INVALID', async () => {
    const tokenizerJson = await readFile(join(tinyDir, 'tokenizer.json'), 'utf8');
    const dir = await variant('truncated-tokenizer', { 'tokenizer.json': tokenizerJson.slice(0, 1000) });
    await assert.rejects(LanguageModel.load(dir, loadOptions), isModelError('TOKENIZER_INVALID', /not valid JSON/));
  });
});
