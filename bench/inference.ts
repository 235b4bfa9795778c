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
 * both runtimes, so prompt processing does not leak into decode figures.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type PreTrainedModel, Tensor, env, pipeline } from '@huggingface/transformers';
import { type PresetName, parameterCount, presetConfig } from '../src/model/config.js';
import { LanguageModel } from '../src/model/runtime/language-model.js';
import { initModel } from '../src/model/files/model-dir.js';
import { type WeightType, parseWeightType } from '../src/model/quantize.js';
import { measureWeightStreamLimit } from './weight-stream-limit.js';

const MODELS = (process.env.BENCH_MODELS ?? 'tiny,gpt2').split(',') as PresetName[];
const NEW_TOKENS = Number(process.env.BENCH_NEW_TOKENS ?? 128);
// float32 always runs: the quantized types are read beside it.
const WEIGHTS = [...new Set<WeightType>(['float32', ...(process.env.BENCH_WEIGHTS ?? '').split(',').filter(Boolean).map(parseWeightType)])];
const CONCURRENT = 8;
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

async function tunebotRuntime(dir: string, preset: PresetName, weights: WeightType): Promise<Runtime> {
  const model = await LanguageModel.load(dir, { executionProvider: 'cpu', logLevel: 'warn', weights });
  const name = weights === 'float32' ? 'tunebot' : `tunebot_${weights}`;
  report({ model: preset, metric: 'load_ms', runtime: name, ms: model.info.loadMs });
  return {
    name,
    async run(prompts, newTokens) {
      const started = performance.now();
      const results = await Promise.all(prompts.map((ids) => model.complete(ids, { greedy: true, maxNewTokens: newTokens })));
      const elapsed = performance.now() - started;
      const short = results.find((r) => r.result.generatedTokens !== newTokens);
      if (short) throw new Error(`tunebot stopped early (${short.result.finishReason}); pick other prompt ids`);
      return elapsed;
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

/** Runs `measure` for both runtimes, alternating, and keeps each one's best of `repeats`. */
async function bestOf(runtimes: Runtime[], repeats: number, measure: (runtime: Runtime) => Promise<number>): Promise<number[]> {
  const best = runtimes.map(() => Infinity);
  for (let i = 0; i < repeats; i++) {
    for (const [index, runtime] of runtimes.entries()) {
      // Both runtimes live in this process: let the other one's ONNX Runtime threads stop
      // spinning first (measured: +130 ms on a 128-token prefill otherwise).
      await new Promise((resolve) => setTimeout(resolve, 500));
      best[index] = Math.min(best[index], await measure(runtime));
    }
  }
  return best;
}

for (const preset of MODELS) {
  const dir = await ensureModel(preset);
  const config = presetConfig(preset);
  const repeats = preset === 'tiny' ? 5 : 3;
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
  const single = await bestOf(runtimes, repeats, (runtime) => runtime.run([promptIds(promptLength)], newTokens));
  const prompts = Array.from({ length: CONCURRENT }, (_, i) => promptIds(promptLength, i + 1));
  const together = await bestOf(runtimes, repeats, (runtime) => runtime.run(prompts, newTokens));
  const aggregate = together.map((ms) => (CONCURRENT * newTokens * 1000) / ms);
  const alone = single.map((ms) => (newTokens * 1000) / ms);
  report({
    model: preset,
    metric: 'aggregate_tokens_per_s',
    concurrent: CONCURRENT,
    prompt_tokens: promptLength,
    new_tokens: newTokens,
    tunebot: round(aggregate[0]),
    transformers_js: round(aggregate[transformersJs]),
    ratio: round(aggregate[0] / aggregate[transformersJs]),
    tunebot_vs_batch_1: round(aggregate[0] / alone[0]),
    transformers_js_vs_batch_1: round(aggregate[transformersJs] / alone[transformersJs]),
    ...quantizedFigures(aggregate, (rate, float32) => rate / float32),
  });
  for (const runtime of runtimes) await runtime.close();
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
