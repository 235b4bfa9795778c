/**
 * npm run bench:inference — decode speed of tunebot's runtime beside Transformers.js's
 * text-generation pipeline on the same onnx/model.onnx, in the same run, as JSON lines.
 *
 *   BENCH_MODELS=tiny,gpt2   which presets (random weights run as fast as real ones)
 *   BENCH_NEW_TOKENS=128     tokens generated per request
 *   BENCH_WEIGHTS=int8,int4  tunebot's weight types to run beside its float32 one (model.weights),
 *                            reported as tunebot_int8, ... and tunebot_int8_vs_float32, how many
 *                            times faster than float32 (default: float32 only)
 *
 * Rates come from differences of whole runs (N+1 tokens minus 1 token), the same way for
 * both runtimes, so prompt processing does not leak into decode figures. The concurrent
 * figures are whole runs (prefill included), with the one-request run alternating with them
 * so both see the same load; each is reported as its best and its mean, and beside them the
 * decode-only rates (each run minus its one-token run), as the single-request figure is. The
 * *_paired ratios are the median of each repeat's concurrent rate over its own single rate.
 * aggregate_tokens_per_s_sampling is the same for tunebot with the product's sampling settings
 * (config/default.json: top-k, temperature, repetition penalty), as the bot answers, at each
 * prompt length of the single-request rows (128 and 512 tokens), with the time from submitting
 * each request of a burst of 8 to its first piece of text (its first token, but for a token
 * that ends in half a character): the mean, and the burst's first and last, averaged over repeats.
 * staggered_arrivals shows tunebot's joins: requests arriving while others decode, and a long prompt's prefill
 * chunked between decode steps (beside one run that prefills each prompt whole).
 */
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { type PreTrainedModel, Tensor, env, pipeline } from '@huggingface/transformers';
import { type PresetName, parameterCount, presetConfig } from '../src/model/config.js';
import { DEFAULT_PREFILL_CHUNK_TOKENS } from '../src/model/generation/scheduler.js';
import { LanguageModel } from '../src/model/runtime/language-model.js';
import { loadConfig } from '../src/core/config.js';
import { initModel } from '../src/model/files/model-dir.js';
import type { GenerationOptions } from '../src/model/generation/options.js';
import { type WeightType, parseWeightType } from '../src/model/quantize.js';
import { measureWeightStreamLimit } from './weight-stream-limit.js';

const MODELS = (process.env.BENCH_MODELS ?? 'tiny,gpt2').split(',') as PresetName[];
const NEW_TOKENS = Number(process.env.BENCH_NEW_TOKENS ?? 128);
// float32 always runs: the quantized types are read beside it.
const WEIGHTS = [...new Set<WeightType>(['float32', ...(process.env.BENCH_WEIGHTS ?? '').split(',').filter(Boolean).map(parseWeightType)])];
const CONCURRENT = 8;
/** Time between arrivals in the staggered run. */
const STAGGER_MS = 300;
const CACHE_DIR = join('.tunebot', 'bench');

function report(figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench: 'inference', ...figures }));
}

/** Deterministic made-up prompt ids (any ids will do for timing). */
function promptIds(length: number, salt = 0): number[] {
  return Array.from({ length }, (_, i) => (i * 7919 + salt * 104729 + 13) % 50000);
}

interface Runtime {
  /** The runtime's key in the reported figures. */
  name: string;
  /** Generates greedily from each prompt (together when several), exactly `newTokens` each; returns ms. */
  run(prompts: number[][], newTokens: number): Promise<number>;
  close(): Promise<void>;
}

interface TunebotRuntime extends Runtime {
  /** Submits every prompt at once, `newTokens` each; returns each one's ms to its first piece of text. */
  firstPieces(prompts: number[][], newTokens: number): Promise<number[]>;
}

/**
 * tunebot's runtime, greedy unless `sampling` (config/default.json's generation settings, with
 * each request of a run seeded by its place in the run).
 */
async function tunebotRuntime(dir: string, preset: PresetName, weights: WeightType, sampling?: GenerationOptions): Promise<TunebotRuntime> {
  const model = await LanguageModel.load(dir, { executionProvider: 'cpu', logLevel: 'warn', weights });
  const name = `${weights === 'float32' ? 'tunebot' : `tunebot_${weights}`}${sampling ? '_sampling' : ''}`;
  report({ model: preset, metric: 'load_ms', runtime: name, ms: model.info.loadMs });
  const options = (request: number): GenerationOptions => (sampling ? { ...sampling, seed: request } : { greedy: true });
  return {
    name,
    async run(prompts, newTokens) {
      const started = performance.now();
      const results = await Promise.all(prompts.map((ids, request) => model.complete(ids, { ...options(request), maxNewTokens: newTokens })));
      const elapsed = performance.now() - started;
      const short = results.find((r) => r.result.generatedTokens !== newTokens);
      if (short) throw new Error(`tunebot stopped early (${short.result.finishReason}); pick other prompt ids`);
      return elapsed;
    },
    firstPieces(prompts, newTokens) {
      const submitted = performance.now();
      return Promise.all(
        prompts.map(async (ids, request) => {
          let firstPieceMs = -1;
          for await (const _piece of model.generate(ids, { ...options(request), maxNewTokens: newTokens })) {
            if (firstPieceMs < 0) firstPieceMs = performance.now() - submitted;
          }
          return firstPieceMs;
        }),
      );
    },
    close: () => model.close(),
  };
}

async function transformersJsRuntime(dir: string): Promise<Runtime> {
  env.allowRemoteModels = false;
  env.localModelPath = '';
  const generator = await pipeline('text-generation', dir, { dtype: 'fp32', device: 'cpu' });
  const model = generator.model as PreTrainedModel;
  return {
    name: 'transformers_js',
    async run(prompts, newTokens) {
      // Equal-length prompts batch without padding; ids go in directly so both runtimes see the same tokens.
      const length = prompts[0].length;
      const ids = new Tensor('int64', BigInt64Array.from(prompts.flat(), BigInt), [prompts.length, length]);
      const mask = new Tensor('int64', new BigInt64Array(prompts.length * length).fill(1n), [prompts.length, length]);
      const started = performance.now();
      await model.generate({ input_ids: ids, attention_mask: mask, max_new_tokens: newTokens, min_new_tokens: newTokens, do_sample: false });
      return performance.now() - started;
    },
    close: () => generator.dispose(),
  };
}

async function ensureModel(preset: PresetName): Promise<string> {
  const dir = join(CACHE_DIR, preset);
  if (!existsSync(join(dir, 'onnx', 'model.onnx'))) {
    console.error(`creating ${preset} model in ${dir} ...`);
    await initModel(dir, preset, 0);
  }
  return dir;
}

/** Runs `measure` for each runtime, alternating, `repeats` times; returns each one's times. */
async function timings(runtimes: readonly Runtime[], repeats: number, measure: (runtime: Runtime) => Promise<number>): Promise<number[][]> {
  const times = runtimes.map((): number[] => []);
  for (let i = 0; i < repeats; i++) {
    for (const [index, runtime] of runtimes.entries()) {
      // Both runtimes live in this process: let the other one's ONNX Runtime threads stop
      // spinning first (measured: +130 ms on a 128-token prefill otherwise).
      await new Promise((resolve) => setTimeout(resolve, 500));
      times[index].push(await measure(runtime));
    }
  }
  return times;
}

/** Each runtime's best of `repeats`. */
async function bestOf(runtimes: readonly Runtime[], repeats: number, measure: (runtime: Runtime) => Promise<number>): Promise<number[]> {
  return (await timings(runtimes, repeats, measure)).map((times) => Math.min(...times));
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

for (const preset of MODELS) {
  const dir = await ensureModel(preset);
  const config = presetConfig(preset);
  const repeats = 5;
  const limit = await measureWeightStreamLimit(config, 5);
  const limitTokensPerS = 1000 / limit.ms;
  report({ model: preset, metric: 'weight_stream_limit', parameters: parameterCount(config), weight_mb: Math.round(limit.bytes / 1e6), ms_per_token: round(limit.ms), tokens_per_s: round(limitTokensPerS), gb_per_s: round(limit.bytes / limit.ms / 1e6) });

  // runtimes[0] is tunebot's float32, the last Transformers.js; the quantized ones sit between.
  const runtimes: Runtime[] = [];
  for (const weights of WEIGHTS) runtimes.push(await tunebotRuntime(dir, preset, weights));
  runtimes.push(await transformersJsRuntime(dir));
  const transformersJs = runtimes.length - 1;
  const quantized = runtimes.slice(1, transformersJs).map((runtime, i) => ({ name: runtime.name, index: i + 1 }));
  // Each quantized runtime's figure, and with `versus` its ratio to float32's.
  const quantizedFigures = (values: number[], versus?: (value: number, float32: number) => number) =>
    Object.fromEntries(
      quantized.flatMap(({ name, index }) => [[name, round(values[index])], ...(versus ? [[`${name}_vs_float32`, round(versus(values[index], values[0]))]] : [])]),
    );
  // One untimed run each: first runs allocate ONNX Runtime's arenas and thread pools.
  for (const runtime of runtimes) await runtime.run([promptIds(64)], 2);
  // tiny's context is 128 positions: it gets shorter runs that fit.
  const newTokens = Math.min(NEW_TOKENS, config.n_positions / 4);
  const contexts = [...new Set([128, 512].map((length) => Math.min(length, config.n_positions - newTokens - 1)))];
  for (const promptLength of contexts) {
    const prompt = [promptIds(promptLength)];
    const first = await bestOf(runtimes, repeats, (runtime) => runtime.run(prompt, 1));
    const whole = await bestOf(runtimes, repeats, (runtime) => runtime.run(prompt, newTokens + 1));
    const rates = whole.map((ms, i) => (newTokens * 1000) / (ms - first[i]));
    report({
      model: preset,
      metric: 'decode_tokens_per_s',
      batch: 1,
      prompt_tokens: promptLength,
      new_tokens: newTokens,
      tunebot: round(rates[0]),
      transformers_js: round(rates[transformersJs]),
      ratio: round(rates[0] / rates[transformersJs]),
      tunebot_share_of_limit: round(rates[0] / limitTokensPerS),
      ...quantizedFigures(rates, (rate, float32) => rate / float32),
    });
    report({
      model: preset,
      metric: 'time_to_first_token_ms',
      prompt_tokens: promptLength,
      tunebot: round(first[0]),
      transformers_js: round(first[transformersJs]),
      ratio: round(first[transformersJs] / first[0]),
      ...quantizedFigures(first, (ms, float32) => float32 / ms),
    });
  }

  const promptLength = contexts[0];
  const measured = await concurrency(runtimes, promptLength, newTokens, repeats);
  const [tunebot, peer] = [measured[0], measured[transformersJs]];
  report({
    model: preset,
    metric: 'aggregate_tokens_per_s',
    concurrent: CONCURRENT,
    prompt_tokens: promptLength,
    new_tokens: newTokens,
    repeats,
    ...concurrencyFigures('tunebot', tunebot),
    transformers_js: round(peer.aggregate.best),
    transformers_js_mean: round(peer.aggregate.mean),
    ratio: round(tunebot.aggregate.best / peer.aggregate.best),
    transformers_js_vs_batch_1: round(peer.aggregate.best / peer.alone.best),
    transformers_js_decode_vs_batch_1: round(peer.aggregateDecode.best / peer.aloneDecode.best),
    ...quantizedFigures(
      measured.map((figures) => figures.aggregate.best),
      (value, float32) => value / float32,
    ),
    loadavg: loadavg().map(round),
    max_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  });
  for (const runtime of runtimes) await runtime.close();

  // The same with the product's sampling settings (tunebot only): top-k, temperature and the
  // repetition penalty, as the bot answers; also with long prompts, as FAQ context makes them.
  const { maxNewTokens: _, stop: __, ...sampling } = loadConfig({}).generation;
  const sampler = await tunebotRuntime(dir, preset, 'float32', sampling);
  await sampler.run([promptIds(64)], 2);
  for (const length of contexts) {
    const [sampled] = await concurrency([sampler], length, newTokens, repeats);
    const bursts = await burstFirstPieces(sampler, length, newTokens, repeats);
    report({ model: preset, metric: 'aggregate_tokens_per_s_sampling', concurrent: CONCURRENT, prompt_tokens: length, new_tokens: newTokens, repeats, sampling, ...concurrencyFigures('tunebot', sampled), ...bursts, loadavg: loadavg().map(round) });
  }
  await sampler.close();

  // Requests that arrive while others decode (tunebot only: Transformers.js has no dynamic batching).
  for (const prefillChunkTokens of [DEFAULT_PREFILL_CHUNK_TOKENS, config.n_positions]) {
    const model = await LanguageModel.load(dir, { executionProvider: 'cpu', logLevel: 'warn', prefillChunkTokens });
    await model.complete(promptIds(64), { greedy: true, maxNewTokens: 2 });
    const longPrompt = Math.min(512, config.n_positions - newTokens - 1);
    const staggered = await staggeredArrivals(model, promptLength, longPrompt, newTokens);
    report({ model: preset, metric: 'staggered_arrivals', prefill_chunk_tokens: prefillChunkTokens, long_prompt_tokens: longPrompt, ...staggered, loadavg: loadavg().map(round) });
    await model.close();
  }
}

interface Rates {
  readonly best: number;
  readonly mean: number;
  /** Each repeat's rate, in order. */
  readonly each: readonly number[];
}

/** One runtime's tokens/s, CONCURRENT requests together and one alone, whole runs and decoding alone. */
interface Concurrency {
  readonly aggregate: Rates;
  readonly alone: Rates;
  readonly aggregateDecode: Rates;
  readonly aloneDecode: Rates;
}

/**
 * Single and concurrent runs alternate, so both see the same load on a shared machine. Each
 * also runs with one new token (its prefill alone), for the decode-only rates by difference.
 */
async function concurrency(runtimes: readonly Runtime[], promptLength: number, newTokens: number, repeats: number): Promise<Concurrency[]> {
  const prompts = Array.from({ length: CONCURRENT }, (_, i) => promptIds(promptLength, i + 1));
  const runsOf = () => ({ whole: runtimes.map((): number[] => []), first: runtimes.map((): number[] => []) });
  const single = runsOf();
  const together = runsOf();
  const pairs: [ReturnType<typeof runsOf>, number[][]][] = [
    [single, [promptIds(promptLength)]],
    [together, prompts],
  ];
  for (let i = 0; i < repeats; i++) {
    for (const [runs, batch] of pairs) {
      (await timings(runtimes, 1, (runtime) => runtime.run(batch, newTokens))).forEach(([ms], r) => runs.whole[r].push(ms));
      (await timings(runtimes, 1, (runtime) => runtime.run(batch, 1))).forEach(([ms], r) => runs.first[r].push(ms));
    }
  }
  const rates = (times: number[], tokens: number): Rates => {
    const each = times.map((ms) => (tokens * 1000) / ms);
    return { best: Math.max(...each), mean: mean(each), each };
  };
  // Decode alone: the newTokens - 1 tokens after the first, from the same repeat's two runs.
  const decodeTimes = (runs: ReturnType<typeof runsOf>, r: number) => runs.whole[r].map((ms, i) => ms - runs.first[r][i]);
  return runtimes.map((_, r) => ({
    aggregate: rates(together.whole[r], CONCURRENT * newTokens),
    alone: rates(single.whole[r], newTokens),
    aggregateDecode: rates(decodeTimes(together, r), CONCURRENT * (newTokens - 1)),
    aloneDecode: rates(decodeTimes(single, r), newTokens - 1),
  }));
}

/**
 * A runtime's concurrency figures under `name`, whole runs and (as name_decode) decoding alone,
 * each with how many times one request's rate it is.
 */
function concurrencyFigures(name: string, { aggregate, alone, aggregateDecode, aloneDecode }: Concurrency): Record<string, number> {
  return {
    ...scalingFigures(name, aggregate, alone),
    // The same without the prompts' prefill (8 prompts take 8 times one prompt's compute).
    ...scalingFigures(`${name}_decode`, aggregateDecode, aloneDecode),
  };
}

/** `together`'s and `alone`'s rates under `name`, and the first over the second by best, mean and paired repeats. */
function scalingFigures(name: string, together: Rates, alone: Rates): Record<string, number> {
  return {
    [name]: round(together.best),
    [`${name}_mean`]: round(together.mean),
    [`${name}_batch_1`]: round(alone.best),
    [`${name}_batch_1_mean`]: round(alone.mean),
    [`${name}_vs_batch_1`]: round(together.best / alone.best),
    [`${name}_vs_batch_1_mean`]: round(together.mean / alone.mean),
    [`${name}_vs_batch_1_paired`]: round(pairedRatio(together, alone)),
  };
}

/**
 * The median over repeats of each repeat's concurrent rate over its own single rate: runs made
 * next to each other share the machine's load, which here moves one request's rate by a
 * quarter within a run, so best over best or mean over mean can pair a fast window with a slow one.
 */
function pairedRatio(together: Rates, alone: Rates): number {
  const ratios = together.each.map((rate, i) => rate / alone.each[i]).sort((a, b) => a - b);
  const middle = Math.floor(ratios.length / 2);
  return ratios.length % 2 === 1 ? ratios[middle] : (ratios[middle - 1] + ratios[middle]) / 2;
}

/**
 * CONCURRENT requests submitted at once, `repeats` times: the mean time to a first piece of
 * text, and the mean of each burst's earliest and latest (the prompts go in in turn).
 */
async function burstFirstPieces(runtime: TunebotRuntime, promptLength: number, newTokens: number, repeats: number) {
  const prompts = Array.from({ length: CONCURRENT }, (_, i) => promptIds(promptLength, i + 1));
  const bursts: number[][] = [];
  for (let i = 0; i < repeats; i++) bursts.push(await runtime.firstPieces(prompts, newTokens));
  return {
    first_piece_ms_mean: round(mean(bursts.flat())),
    first_piece_ms_earliest: round(mean(bursts.map((burst) => Math.min(...burst)))),
    first_piece_ms_latest: round(mean(bursts.map((burst) => Math.max(...burst)))),
  };
}

/**
 * CONCURRENT - 1 requests arrive STAGGER_MS apart, and then one with a long prompt. Reports the
 * aggregate rate and the time to each request's first piece of text. (Pieces are whole
 * characters: random weights emit byte tokens that a stream holds back for a while, so gaps
 * between pieces do not time decode steps; scheduler.test.ts checks that a decode step runs
 * between every two prefill chunks.)
 */
async function staggeredArrivals(model: LanguageModel, promptLength: number, longPrompt: number, newTokens: number) {
  const started = performance.now();
  const firstPieceMs: number[] = [];
  const request = async (ids: number[]) => {
    const submitted = performance.now();
    let first = true;
    for await (const _piece of model.generate(ids, { greedy: true, maxNewTokens: newTokens })) {
      if (first) firstPieceMs.push(performance.now() - submitted);
      first = false;
    }
  };
  const requests: Promise<void>[] = [];
  for (let i = 0; i < CONCURRENT - 1; i++) {
    requests.push(request(promptIds(promptLength, i + 1)));
    await new Promise((resolve) => setTimeout(resolve, STAGGER_MS));
  }
  requests.push(request(promptIds(longPrompt, CONCURRENT)));
  await Promise.all(requests);
  const elapsed = performance.now() - started;
  return {
    stagger_ms: STAGGER_MS,
    aggregate_tokens_per_s: round((CONCURRENT * newTokens * 1000) / elapsed),
    first_piece_ms_mean: round(mean(firstPieceMs)),
    first_piece_ms_max: round(Math.max(...firstPieceMs)),
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
