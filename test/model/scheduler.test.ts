import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { presetConfig } from '../../src/model/config.js';
import { ModelError } from '../../src/model/errors.js';
import type { Tokenizer } from '../../src/model/files/tokenizer.js';
import { initWeights } from '../../src/model/files/weights.js';
import { type GenerationOptions, resolveGenerationOptions } from '../../src/model/generation/options.js';
import { CACHE_RELEASE_MS, type GenerationResult, GenerationScheduler } from '../../src/model/generation/scheduler.js';
import { buildGpt2Graph } from '../../src/model/gpt2-graph.js';
import { encodeModel } from '../../src/model/onnx/encode.js';
import { SeededRandom } from '../../src/model/random.js';
import type { BatchKvCache } from '../../src/model/runtime/kv-cache.js';
import { type ForwardOptions, Gpt2Decoder, type NextTokenScores } from '../../src/model/runtime/decoder.js';
import { type ModelSession, createModelSession } from '../../src/model/runtime/session.js';
import { penalizedReference } from '../helpers/candidates.js';

const config = presetConfig('tiny'); // 2 layers, a context of 128, GPT-2's vocabulary

/**
 * Each token streams as its id and a comma, so a request's text is exactly its token ids:
 * the comparisons below are token for token.
 */
const idTokenizer: Tokenizer = {
  encode: () => assert.fail('the scheduler never encodes'),
  decode: () => assert.fail('the scheduler never decodes'),
  tokenBytes: (id) => new TextEncoder().encode(`${id},`),
  eosTokenId: config.eos_token_id,
  vocabSize: config.vocab_size,
};

/** One decoder run as the scheduler asked for it: the tokens it fed each slot. */
type Run = readonly (readonly number[])[];

/** A Gpt2Decoder that logs each run and the caches it makes, and may act before a run (a cancel arriving mid-prefill). */
class RecordingDecoder extends Gpt2Decoder {
  readonly runs: Run[] = [];
  beforeRun: ((run: Run) => void) | null = null;

  readonly wholeRows: boolean[] = [];
  /** The scheduler's prefill cache, then its decode cache. */
  readonly caches: BatchKvCache[] = [];

  override newBatchCache(): BatchKvCache {
    const cache = super.newBatchCache();
    this.caches.push(cache);
    return cache;
  }

  override forward(cache: BatchKvCache, tokens: readonly (readonly number[])[], options: ForwardOptions = {}): Promise<NextTokenScores[]> {
    this.runs.push(tokens.map((row) => [...row]));
    this.wholeRows.push(options.wholeRows ?? true);
    this.beforeRun?.(tokens);
    return super.forward(cache, tokens, options);
  }
}

interface Generated {
  readonly ids: number[];
  readonly result: GenerationResult;
}

/** The most likely token, the lowest id on a tie: written out here, apart from sampler.ts. */
function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

let session: ModelSession;

before(async () => {
  session = await createModelSession(encodeModel(buildGpt2Graph(config, initWeights(config, 77), 'runtime')), { executionProvider: 'cpu', logger: silentLogger });
});
after(async () => {
  await session.release();
});

/**
 * The reference: one request alone, its whole prompt in one run, then one token per run,
 * stopping as the scheduler must (eos, maxNewTokens, the context). A repetition penalty is
 * applied here, in float64, to the unpenalized rows the decoder returns.
 */
async function greedyAlone(prompt: readonly number[], maxNewTokens: number, penalty = 1): Promise<number[]> {
  const decoder = new Gpt2Decoder(session, config);
  let { logits, cache } = await decoder.prefill(prompt);
  const ids: number[] = [];
  for (;;) {
    const row = Float64Array.from(logits);
    for (const seen of new Set([...prompt, ...ids])) row[seen] = penalizedReference(row[seen], penalty);
    const token = argmax(row);
    ids.push(token);
    if (token === config.eos_token_id || ids.length >= maxNewTokens || prompt.length + ids.length >= config.n_positions) return ids;
    logits = (await decoder.forward(cache, [[token]]))[0].logits as Float32Array;
  }
}

function prompt(length: number, salt: number): number[] {
  const random = new SeededRandom(salt);
  return Array.from({ length }, () => Math.floor(random.next() * 50000));
}

function newScheduler(prefillChunkTokens: number, maxBatchSize = 16): { scheduler: GenerationScheduler; decoder: RecordingDecoder } {
  const decoder = new RecordingDecoder(session, config);
  return { scheduler: new GenerationScheduler(decoder, idTokenizer, maxBatchSize, silentLogger, prefillChunkTokens), decoder };
}

/** Submits a request; `onToken` sees each token id as it streams. */
function generate(
  scheduler: GenerationScheduler,
  promptIds: readonly number[],
  options: GenerationOptions,
  onToken: (count: number) => void = () => undefined,
): { done: Promise<Generated>; cancel: () => void } {
  let text = '';
  let cancel!: () => void;
  const done = new Promise<Generated>((resolve, reject) => {
    ({ cancel } = scheduler.submit({
      promptIds,
      options: resolveGenerationOptions(options),
      onText: (piece) => {
        text += piece;
        onToken(text.split(',').length - 1);
      },
      onEnd: (result) => resolve({ ids: text.split(',').filter(Boolean).map(Number), result }),
      onError: reject,
    }));
  });
  return { done, cancel };
}

const isPrefillChunk = (run: Run) => run.some((row) => row.length > 1);

describe('GenerationScheduler on a tiny random model', () => {
  it('prefills prompts in the order they came, together while they share a chunk, and each gets its tokens alone', async () => {
    const { scheduler, decoder } = newScheduler(32);
    const lengths = [5, 40, 17, 1, 33, 60, 9, 25];
    const prompts = lengths.map((length, i) => prompt(length, i + 1));
    const together = await Promise.all(prompts.map((ids) => generate(scheduler, ids, { greedy: true, maxNewTokens: 12 }).done));
    for (const [i, ids] of prompts.entries()) {
      assert.deepEqual(together[i].ids, await greedyAlone(ids, 12), `request ${i} (${ids.length} prompt tokens)`);
      assert.deepEqual(together[i].result, { finishReason: 'length', promptTokens: ids.length, generatedTokens: 12 });
    }
    // 32 tokens a chunk, shared equally. A prompt joins the prefill batch only while everyone in
    // it still finishes this chunk: the 5 then 16 of the 40 (16 each), the 40's last 24 alone,
    // the 17 alone (at 16 each it would need another chunk), the 1 with 16 of the 33, ...
    assert.deepEqual(
      decoder.runs.filter(isPrefillChunk).map((run) => run.map((row) => row.length)),
      [[5, 16], [24], [17], [1, 16], [17], [32], [28], [9, 16], [9]],
    );
  });

  it('gives requests that join a decoding batch at different times their own tokens, prefilling between decode steps', async () => {
    const { scheduler, decoder } = newScheduler(16);
    const first = prompt(10, 11);
    const joiners = [prompt(70, 12), prompt(3, 13), prompt(45, 14)];
    const started: Promise<Generated>[] = [];
    const submitJoiners = (count: number) => {
      // the first joiner arrives after 2 tokens, the other two together after 6
      if (count === 2 && started.length === 1) started.push(generate(scheduler, joiners[0], { greedy: true, maxNewTokens: 30 }).done);
      if (count === 6 && started.length === 2) for (const ids of joiners.slice(1)) started.push(generate(scheduler, ids, { greedy: true, maxNewTokens: 20 }).done);
    };
    started.push(generate(scheduler, first, { greedy: true, maxNewTokens: 40 }, submitJoiners).done);
    await scheduler.idle();
    const results = await Promise.all(started);
    assert.deepEqual(results[0].ids, await greedyAlone(first, 40), 'the first request');
    for (const [i, ids] of joiners.entries()) assert.deepEqual(results[i + 1].ids, await greedyAlone(ids, i === 0 ? 30 : 20), `joiner ${i}`);

    // The 70-token prompt goes in over several chunks, each followed by a decode step of the batch.
    const runs = decoder.runs;
    const chunks = runs.map((run, index) => ({ run, index })).filter(({ run }) => isPrefillChunk(run));
    assert.ok(chunks.length >= 5, `${chunks.length} prefill chunks`);
    for (const { index } of chunks.slice(0, -1)) {
      assert.ok(!isPrefillChunk(runs[index + 1]), `run ${index + 1} is a decode step between chunks`);
    }
  });

  it('gives sampled requests in a batch the text they get alone', async () => {
    const requests: [number[], GenerationOptions][] = [
      [prompt(20, 21), { seed: 1, maxNewTokens: 25 }],
      [prompt(50, 22), { seed: 2, temperature: 0.7, topK: 10, maxNewTokens: 15 }],
      [prompt(2, 23), { seed: 3, topP: 0.9, repetitionPenalty: 1.3, maxNewTokens: 30 }],
    ];
    const alone: Generated[] = [];
    for (const [ids, options] of requests) alone.push(await generate(newScheduler(8).scheduler, ids, options).done);
    const { scheduler } = newScheduler(8);
    assert.deepEqual(await Promise.all(requests.map(([ids, options]) => generate(scheduler, ids, options).done)), alone);
  });

  it('copies whole rows of logits out of a run only while a sequence in the batch needs them', async () => {
    const { scheduler, decoder } = newScheduler(64);
    const greedy = generate(scheduler, prompt(12, 31), { greedy: true, maxNewTokens: 20 }).done;
    const penalized = generate(scheduler, prompt(8, 32), { seed: 4, temperature: 0.8, topK: 40, repetitionPenalty: 1.1, maxNewTokens: 10 }).done;
    const wholeRow = generate(scheduler, prompt(5, 33), { seed: 5, topK: 0, topP: 0.9, maxNewTokens: 5 }).done;
    const results = await Promise.all([greedy, penalized, wholeRow]);
    assert.deepEqual(results[0].ids, await greedyAlone(prompt(12, 31), 20));
    // The top-k 0 request is in the first 5 runs (its prefill and 4 decode steps), none after;
    // the penalized one is served by the candidates (the graph applies the penalty).
    assert.deepEqual(decoder.wholeRows, decoder.runs.map((_, run) => run < 5));
  });

  it("applies each request's repetition penalty in the graph, as a float64 reference does to whole rows", async () => {
    const { scheduler, decoder } = newScheduler(64);
    const requests: [number[], number][] = [
      [prompt(80, 41), 1.5], // more than 64 distinct tokens seen: SeenTokens grows
      [prompt(6, 42), 1],
      [prompt(14, 43), 3],
    ];
    const together = await Promise.all(requests.map(([ids, repetitionPenalty]) => generate(scheduler, ids, { greedy: true, repetitionPenalty, maxNewTokens: 24 }).done));
    for (const [i, [ids, penalty]] of requests.entries()) assert.deepEqual(together[i].ids, await greedyAlone(ids, 24, penalty), `request ${i}, penalty ${penalty}`);
    // The penalty of 3 changes what greedy picks: the match above is the penalty's, not only the batching's.
    assert.notDeepEqual(together[2].ids, await greedyAlone(requests[2][0], 24));
    assert.ok(decoder.wholeRows.every((whole) => !whole), 'greedy requests, penalized or not, need no whole rows');
  });

  it('lets the rest of the batch go on while sequences leave, and ends at the context', async () => {
    const { scheduler } = newScheduler(64);
    const requests: [number[], number][] = [
      [prompt(8, 31), 3],
      [prompt(12, 32), 25],
      [prompt(110, 33), 50], // reaches the context of 128 first
      [prompt(4, 34), 1],
      [prompt(30, 35), 14],
    ];
    const results = await Promise.all(requests.map(([ids, maxNewTokens]) => generate(scheduler, ids, { greedy: true, maxNewTokens }).done));
    for (const [i, [ids, maxNewTokens]] of requests.entries()) assert.deepEqual(results[i].ids, await greedyAlone(ids, maxNewTokens), `request ${i}`);
    assert.equal(results[2].result.finishReason, 'context');
    assert.equal(results[2].result.generatedTokens, config.n_positions - 110);
    assert.deepEqual(
      results.map((result) => result.result.finishReason),
      ['length', 'length', 'context', 'length', 'length'],
    );
  });

  it('cancels a request mid-prefill: it ends aborted and the batch goes on', async () => {
    const { scheduler, decoder } = newScheduler(16);
    const decodingPrompt = prompt(6, 41);
    const longPrompt = prompt(90, 42);
    const started: Promise<Generated>[] = [];
    const decoding = generate(scheduler, decodingPrompt, { greedy: true, maxNewTokens: 20 }, (count) => {
      if (count === 1) {
        const cancelled = generate(scheduler, longPrompt, { greedy: true, maxNewTokens: 20 });
        // cancelled after its second chunk went in
        let chunks = 0;
        decoder.beforeRun = (run) => {
          if (run.some((row) => row.length > 1) && ++chunks === 2) cancelled.cancel();
        };
        started.push(cancelled.done);
      }
    });
    assert.deepEqual((await decoding.done).ids, await greedyAlone(decodingPrompt, 20));
    const [aborted] = await Promise.all(started);
    assert.deepEqual(aborted, { ids: [], result: { finishReason: 'aborted', promptTokens: 90, generatedTokens: 0 } });
    // the decoding request's own prompt, then the long prompt's two chunks, and none after the cancel
    assert.deepEqual(
      decoder.runs.filter(isPrefillChunk).map((run) => run.map((row) => row.length)),
      [[6], [16], [16]],
    );
    // the prefill batch is empty again: the next request prefills alone from a clean cache
    decoder.beforeRun = null;
    const next = prompt(37, 43);
    assert.deepEqual((await generate(scheduler, next, { greedy: true, maxNewTokens: 5 }).done).ids, await greedyAlone(next, 5));
  });

  it('cancels a waiting request and a decoding one', async () => {
    const { scheduler } = newScheduler(16, 1);
    const running = generate(scheduler, prompt(5, 51), { greedy: true, maxNewTokens: 50 }, (count) => {
      if (count === 3) {
        waiting.cancel();
        running.cancel();
      }
    });
    const waiting = generate(scheduler, prompt(5, 52), { greedy: true, maxNewTokens: 50 });
    assert.deepEqual((await running.done).result, { finishReason: 'aborted', promptTokens: 5, generatedTokens: 3 });
    assert.deepEqual((await waiting.done).result, { finishReason: 'aborted', promptTokens: 5, generatedTokens: 0 });
  });

  it('ends a request cancelled while it waits for an earlier prompt to go in, before its turn', async () => {
    const { scheduler, decoder } = newScheduler(16);
    const longPrompt = prompt(90, 44);
    const long = generate(scheduler, longPrompt, { greedy: true, maxNewTokens: 5 });
    let runsAtEnd = -1;
    const never = () => assert.fail('a request cancelled before its prefill streams nothing');
    const waiting = new Promise<GenerationResult>((resolve, reject) => {
      const { cancel } = scheduler.submit({
        promptIds: prompt(5, 45),
        options: resolveGenerationOptions({ greedy: true, maxNewTokens: 5 }),
        onText: never,
        onEnd: (result) => {
          runsAtEnd = decoder.runs.length;
          resolve(result);
        },
        onError: reject,
      });
      let chunks = 0;
      decoder.beforeRun = (run) => {
        if (isPrefillChunk(run) && ++chunks === 2) cancel();
      };
    });
    assert.deepEqual(await waiting, { finishReason: 'aborted', promptTokens: 5, generatedTokens: 0 });
    assert.equal(runsAtEnd, 2, 'it ends right after the chunk it was cancelled in, with the long prompt still going in');
    assert.deepEqual((await long.done).ids, await greedyAlone(longPrompt, 5));
    assert.ok(
      decoder.runs.every((run) => run.length === 1),
      'the cancelled prompt never ran beside the long one',
    );
  });

  it('lays the decode cache out once for a burst whose prompts go in one after another', async () => {
    const { scheduler, decoder } = newScheduler(16);
    const [, decodeCache] = decoder.caches;
    const buffers = new Set<ArrayBufferLike>();
    decoder.beforeRun = (run) => {
      if (!isPrefillChunk(run) && decodeCache.batchSize > 0) buffers.add(decodeCache.pastKeys(0).buffer);
    };
    const prompts = [1, 2, 3, 4, 5].map((salt) => prompt(12, salt));
    const results = await Promise.all(prompts.map((ids) => generate(scheduler, ids, { greedy: true, maxNewTokens: 8 }).done));
    for (const [i, ids] of prompts.entries()) assert.deepEqual(results[i].ids, await greedyAlone(ids, 8), `request ${i}`);
    // 12-token prompts at 16 tokens a chunk go in one per chunk, and join the decode batch one at a time
    assert.deepEqual(
      decoder.runs.filter(isPrefillChunk).map((run) => run.map((row) => row.length)),
      [[12], [12], [12], [12], [12]],
    );
    assert.equal(buffers.size, 1, 'every decode step ran in the buffers laid out for the whole burst');
  });

  it('keeps its caches laid out from one burst to the next, and gives them back once idle for CACHE_RELEASE_MS', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { scheduler, decoder } = newScheduler(64);
    const { caches } = decoder;
    const burst = async () => {
      const generated = await Promise.all([1, 2, 3].map((salt) => generate(scheduler, prompt(10, salt), { greedy: true, maxNewTokens: 3 }).done));
      await scheduler.idle();
      return generated.map(({ ids }) => ids);
    };
    const first = await burst();
    assert.equal(caches.length, 2, 'a prefill cache and a decode cache');
    const buffers = caches.map((cache) => cache.pastKeys(0).buffer);
    assert.ok(buffers.every((buffer) => buffer.byteLength > 0));
    t.mock.timers.tick(CACHE_RELEASE_MS - 1);
    assert.deepEqual(await burst(), first);
    assert.ok(
      caches.every((cache, i) => cache.pastKeys(0).buffer === buffers[i]),
      'the second burst ran in the layout the first left',
    );
    t.mock.timers.tick(CACHE_RELEASE_MS);
    assert.deepEqual(
      caches.map((cache) => cache.pastKeys(0).buffer.byteLength),
      [0, 0],
    );
  });

  it('refuses an empty prompt and one that fills the context with OPTIONS_INVALID, queueing nothing', async () => {
    const { scheduler, decoder } = newScheduler(16);
    const refused: [number[], RegExp][] = [
      [[], /the prompt is empty/],
      [prompt(128, 61), /a prompt of 128 tokens leaves no room to generate in a context of 128; cut it to at most 127/],
      [prompt(500, 62), /a prompt of 500 tokens leaves no room/],
    ];
    const never = () => assert.fail('a refused request gets no callback');
    for (const [ids, message] of refused) {
      assert.throws(
        () => scheduler.submit({ promptIds: ids, options: resolveGenerationOptions({}), onText: never, onEnd: never, onError: never }),
        (error: unknown) => error instanceof ModelError && error.code === 'OPTIONS_INVALID' && message.test(error.message),
      );
    }
    await scheduler.idle();
    assert.equal(decoder.runs.length, 0);
    const fits = prompt(127, 63);
    assert.deepEqual((await generate(scheduler, fits, { greedy: true, maxNewTokens: 5 }).done).ids, await greedyAlone(fits, 5));
  });

  it('refuses a batch size or prefill budget below 1', () => {
    for (const [maxBatchSize, chunk, message] of [
      [0, 16, /maxBatchSize must be an integer >= 1, got 0/],
      [4, 0, /prefillChunkTokens must be an integer >= 1, got 0/],
      [4, 2.5, /prefillChunkTokens must be an integer >= 1, got 2.5/],
    ] as const) {
      assert.throws(
        () => new GenerationScheduler(new Gpt2Decoder(session, config), idTokenizer, maxBatchSize, silentLogger, chunk),
        (error: unknown) => error instanceof ModelError && error.code === 'OPTIONS_INVALID' && message.test(error.message),
      );
    }
  });
});
