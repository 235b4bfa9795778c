/**
 * npm run bench:train — training speed of a GPT-2 124M-shaped model (random init) on the CPU
 * through TrainingStepRunner, full fine-tuning and LoRA, beside llm.c's CPU trainer and the
 * machine's fp32 MatMul rate measured in the same run, as JSON lines.
 *
 *   BENCH_TRAIN_STEPS=3          timed steps per configuration, after one warm-up step
 *   BENCH_TRAIN_LENGTHS=64,256   tokens per row (batch 4)
 *   BENCH_TRAIN_MODES=full,lora  lora is rank 8
 *   BENCH_TRAIN_MODEL=gpt2       preset (tiny for a smoke run)
 *   BENCH_TRAIN_PROFILE=1        0 skips the ONNX Runtime profile of the gradient graph
 *
 * Work per token (PaLM appendix B, nanoGPT's estimate_mfu): 6 N + 12 L C T for full
 * fine-tuning (N parameters, L layers, C channels, T tokens per row: forward 2 N, backward
 * 4 N, attention's QK^T and AV 4 L C T forward and twice that backward). LoRA computes no
 * gradient for the frozen weights: 4 N + 12 L C T + 6 per adapter parameter.
 */
import { existsSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/log.js';
import { END_OF_TEXT_ID, type Gpt2Config, type PresetName, parameterCount } from '../src/model/config.js';
import { readModelDir } from '../src/model/files/model-files.js';
import { initModel } from '../src/model/files/model-dir.js';
import { GraphBuilder } from '../src/model/onnx/graph.js';
import { encodeModel } from '../src/model/onnx/encode.js';
import { type SessionTensor, createModelSession, feedTensor } from '../src/model/runtime/session.js';
import { elementCount, type WeightMap } from '../src/model/tensor.js';
import { ADAMW_SCALARS, type AdamWScalar, buildAdamWGraph, momentName, varianceName } from '../src/model/training/adamw-graph.js';
import { type TrainingBatch, makeBatch } from '../src/model/training/data.js';
import { DEFAULT_OPTIMIZER, TrainingStepRunner, type TrainingState } from '../src/model/training/step-runner.js';
import { type LoraSettings, type TrainableParameter, buildGradientGraph, gradientName } from '../src/model/training/train-graph.js';
import { measureMatMulPeak } from './matmul-peak.js';
import { profileRun } from './ort-profile.js';

type Mode = 'full' | 'lora';

const PRESET = (process.env.BENCH_TRAIN_MODEL ?? 'gpt2') as PresetName;
const STEPS = positiveInteger('BENCH_TRAIN_STEPS', process.env.BENCH_TRAIN_STEPS ?? '3');
const LENGTHS = (process.env.BENCH_TRAIN_LENGTHS ?? '64,256').split(',').map((value) => positiveInteger('BENCH_TRAIN_LENGTHS', value));
const MODES = (process.env.BENCH_TRAIN_MODES ?? 'full,lora').split(',') as Mode[];
const PROFILE = process.env.BENCH_TRAIN_PROFILE !== '0';
const BATCH = 4;
const LORA: LoraSettings = { rank: 8, alpha: 16 };
const LEARNING_RATE = 1e-4;
const CACHE_DIR = join('.tunebot', 'bench');
/** GPT-2 124M's MLP at 1024 tokens: [1024, 768] x [768, 3072] and back. */
const PEAK_SHAPE = { rows: 1024, channels: 768, pairs: 4 };
/** llm.c's train_gpt2.c (fp32, OpenMP) on a machine of this kind, batch 4: tokens per row -> tokens/s. */
const LLMC_TOKENS_PER_S = new Map([
  [64, 58],
  [256, 45],
]);

for (const mode of MODES) if (mode !== 'full' && mode !== 'lora') throw new Error(`BENCH_TRAIN_MODES: "${mode}" is not full or lora`);

function positiveInteger(name: string, value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new Error(`${name} must hold positive integers, got "${value}"`);
  return number;
}

function report(figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench: 'train', ...figures }));
}

function round(value: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] : String(error);
}

/** Deterministic made-up token ids (any ids will do for timing); every target counts in the loss. */
function benchBatch(length: number): TrainingBatch {
  const rows = Array.from({ length: BATCH }, (_, row) => ({
    ids: Array.from({ length: length + 1 }, (_, i) => (i * 7919 + row * 104729 + 13) % 50000),
    promptLength: 0,
  }));
  return makeBatch(rows, END_OF_TEXT_ID);
}

function flopsPerToken(config: Gpt2Config, mode: Mode, length: number, trainable: number): number {
  const attention = 12 * config.n_layer * config.n_embd * length;
  const n = parameterCount(config);
  return mode === 'full' ? 6 * n + attention : 4 * n + attention + 6 * trainable;
}

async function msOf(work: () => unknown): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

/** Milliseconds of each of `runs` calls. */
async function timed(runs: number, work: () => unknown): Promise<number[]> {
  const times: number[] = [];
  for (let run = 0; run < runs; run++) times.push(await msOf(work));
  return times;
}

const best = (times: readonly number[]) => Math.min(...times);
const mean = (times: readonly number[]) => times.reduce((sum, time) => sum + time, 0) / times.length;

async function loadBaseWeights(preset: PresetName): Promise<{ config: Gpt2Config; weights: WeightMap }> {
  const dir = join(CACHE_DIR, preset);
  if (!existsSync(join(dir, 'onnx', 'model.onnx'))) {
    console.error(`creating ${preset} model in ${dir} ...`);
    return initModel(dir, preset, 0);
  }
  return readModelDir(dir);
}

/** The AdamW graph alone, in its own session, fed like the runner feeds it: the optimizer's share of a step. */
async function optimizerProbe(parameters: readonly TrainableParameter[]) {
  const session = await createModelSession(encodeModel(buildAdamWGraph(parameters)), { executionProvider: 'cpu', logger: silentLogger });
  const { beta1, beta2, epsilon, weightDecay, clipNorm } = DEFAULT_OPTIMIZER;
  const scalars: Record<AdamWScalar, number> = { learning_rate: LEARNING_RATE, beta1, beta2, epsilon, weight_decay: weightDecay, clip_norm: clipNorm, step: 1 };
  return {
    run(state: TrainingState, gradients: Map<string, Float32Array>) {
      const feeds: Record<string, SessionTensor> = {};
      for (const name of ADAMW_SCALARS) feeds[name] = feedTensor('float32', Float32Array.of(scalars[name]), []);
      for (const { name, dims } of parameters) {
        const shape = [...dims];
        feeds[name] = feedTensor('float32', state.parameters.get(name) as Float32Array, shape);
        feeds[momentName(name)] = feedTensor('float32', state.moments.get(name) as Float32Array, shape);
        feeds[varianceName(name)] = feedTensor('float32', state.variances.get(name) as Float32Array, shape);
        feeds[gradientName(name)] = feedTensor('float32', gradients.get(name) as Float32Array, shape);
      }
      return session.run(feeds);
    },
    release: () => session.release(),
  };
}

/**
 * Milliseconds per GB that leaves ONNX Runtime as graph outputs: a graph of one Identity per
 * parameter (in ONNX Runtime's copy, then the copy into a JavaScript buffer). An upper
 * bound on what handing outputs back costs, since real outputs skip the Identity's copy.
 */
async function measureOutputCopy(parameters: readonly TrainableParameter[], values: Map<string, Float32Array>): Promise<number> {
  const g = new GraphBuilder('copy_out');
  for (const { name, dims } of parameters) g.output(g.op('Identity', [g.input(name, 'float32', dims)]), `out.${name}`, 'float32', dims);
  const session = await createModelSession(encodeModel(g.build()), { executionProvider: 'cpu', logger: silentLogger });
  const feeds = Object.fromEntries(parameters.map(({ name, dims }) => [name, feedTensor('float32', values.get(name) as Float32Array, [...dims])]));
  const times = await timed(3, () => session.run(feeds));
  await session.release();
  const gigabytes = (parameters.reduce((sum, { dims }) => sum + elementCount(dims), 0) * 4) / 1e9;
  return best(times.slice(1)) / gigabytes;
}

/** The multiply-add pass of TrainingStepRunner.step's gradient accumulation, over arrays of the same sizes. */
function accumulateInto(into: Map<string, Float32Array>, values: Map<string, Float32Array>, factor: number): void {
  for (const [name, gradient] of values) {
    const target = into.get(name) as Float32Array;
    for (let i = 0; i < target.length; i++) target[i] += gradient[i] * factor;
  }
}

function phaseOf(node: string): string {
  if (node.startsWith('backward/')) return 'backward';
  if (node.startsWith('loss/')) return 'loss';
  return 'forward';
}

async function benchMode(config: Gpt2Config, weights: WeightMap, mode: Mode): Promise<void> {
  const lora = mode === 'lora' ? LORA : undefined;
  let started = performance.now();
  const runner = await TrainingStepRunner.create(config, weights, { lora, executionProvider: 'cpu', logger: silentLogger });
  const setupS = (performance.now() - started) / 1000;
  const state = runner.initialState(weights, 0);
  const trainable = runner.parameters.reduce((sum, { dims }) => sum + elementCount(dims), 0);
  const optimizer = await optimizerProbe(runner.parameters);
  await optimizer.run(state, state.moments); // warm-up, with zero gradients
  const copyMsPerGb = await measureOutputCopy(runner.parameters, state.parameters);
  // Per step out of ONNX Runtime: the gradients, then new parameters, moments and variances.
  const copyOutMs = (copyMsPerGb * 4 * trainable * 4) / 1e9;

  for (const [index, length] of LENGTHS.entries()) {
    if (length > config.n_positions) {
      report({ model: PRESET, mode, batch: BATCH, length, error: `longer than the model's ${config.n_positions} positions` });
      continue;
    }
    try {
      const batch = benchBatch(length);
      // Measured beside each configuration: on a shared machine the peak moves with the load.
      const peak = await measureMatMulPeak(PEAK_SHAPE, 2);
      started = performance.now();
      const warm = await runner.step(state, [batch], LEARNING_RATE);
      const warmUpS = (performance.now() - started) / 1000;
      // A step, the gradient run alone and the AdamW run alone take turns, so load from other
      // work on the machine falls on all three alike; each keeps its best time.
      const steps: number[] = [];
      const forwardBackward: number[] = [];
      const optimizerTimes: number[] = [];
      const cpu = { user: 0, system: 0 };
      let gradients = new Map<string, Float32Array>();
      for (let run = 0; run < STEPS; run++) {
        const cpuBefore = process.cpuUsage();
        steps.push(await msOf(() => runner.step(state, [batch], LEARNING_RATE)));
        const used = process.cpuUsage(cpuBefore);
        cpu.user += used.user;
        cpu.system += used.system;
        forwardBackward.push(await msOf(async () => (gradients = (await runner.lossAndGradients(state, batch)).gradients)));
        optimizerTimes.push(await msOf(() => optimizer.run(state, gradients)));
      }

      const tokens = BATCH * length;
      const tokensPerS = (tokens * 1000) / best(steps);
      const flops = flopsPerToken(config, mode, length, trainable);
      const gflopPerS = (tokensPerS * flops) / 1e9;
      const llmcTokensPerS = LLMC_TOKENS_PER_S.get(length);
      // llm.c trains every weight: its rate is counted with the full fine-tuning formula.
      const llmcGflopPerS = llmcTokensPerS && (llmcTokensPerS * flopsPerToken(config, 'full', length, 0)) / 1e9;
      report({
        model: PRESET,
        metric: 'train_tokens_per_s',
        mode,
        batch: BATCH,
        length,
        trainable_parameters: trainable,
        steps: STEPS,
        step_ms: round(best(steps)),
        mean_step_ms: round(mean(steps)),
        tokens_per_s: round(tokensPerS),
        gflop_per_token: round(flops / 1e9, 4),
        gflop_per_s: round(gflopPerS),
        matmul_peak_gflop_per_s: round(peak.gflopPerS),
        share_of_matmul_peak: round(gflopPerS / peak.gflopPerS, 3),
        llmc_tokens_per_s: llmcTokensPerS ?? null,
        llmc_gflop_per_s: llmcGflopPerS ? round(llmcGflopPerS) : null,
        ratio_tokens_per_s: llmcTokensPerS ? round(tokensPerS / llmcTokensPerS, 3) : null,
        ratio_gflop_per_s: llmcGflopPerS ? round(gflopPerS / llmcGflopPerS, 3) : null,
        // CPU seconds across ONNX Runtime's threads; system time is mostly page faults on
        // freshly allocated output buffers.
        cpu_user_s_per_step: round(cpu.user / 1e6 / STEPS),
        cpu_system_s_per_step: round(cpu.system / 1e6 / STEPS),
        loss: round(warm.loss, 4),
        session_setup_s: index === 0 ? round(setupS) : undefined,
        warm_up_step_s: round(warmUpS),
        max_rss_gb: round(process.resourceUsage().maxRSS / 1024 ** 2),
        load_average_1m: round(loadavg()[0]),
      });

      // With several micro-batches step() sums gradients in JavaScript: a scaling pass over
      // every gradient, then one multiply-add pass per further micro-batch. Timed here as one
      // such pass over these gradients (the configurations above use one micro-batch).
      const sums = new Map([...gradients].map(([name, gradient]) => [name, gradient.slice()]));
      const accumulatePass = best(await timed(STEPS, () => accumulateInto(sums, gradients, 0.5)));
      const stepMs = best(steps);
      const forwardBackwardMs = best(forwardBackward);
      const optimizerMs = best(optimizerTimes);
      report({
        model: PRESET,
        metric: 'step_split_ms',
        mode,
        batch: BATCH,
        length,
        step: round(stepMs),
        forward_backward: round(forwardBackwardMs),
        optimizer: round(optimizerMs),
        js_rest: round(stepMs - forwardBackwardMs - optimizerMs),
        ort_output_copies_upper_bound: round(copyOutMs),
        js_accumulate_pass: round(accumulatePass),
        forward_backward_share: round(forwardBackwardMs / stepMs, 3),
        optimizer_share: round(optimizerMs / stepMs, 3),
      });
    } catch (error) {
      report({ model: PRESET, mode, batch: BATCH, length, error: errorMessage(error), max_rss_gb: round(process.resourceUsage().maxRSS / 1024 ** 2) });
    }
  }
  await optimizer.release();
  await runner.release();

  if (!PROFILE) return;
  const length = Math.max(...LENGTHS.filter((value) => value <= config.n_positions));
  try {
    const batch = benchBatch(length);
    const { graph } = buildGradientGraph(config, lora ? { lora, frozen: weights } : {});
    const feeds: Record<string, SessionTensor> = {
      input_ids: feedTensor('int64', batch.inputIds, [BATCH, length]),
      attention_mask: feedTensor('int64', batch.attentionMask, [BATCH, length]),
      targets: feedTensor('int64', batch.targets, [BATCH, length]),
      loss_mask: feedTensor('float32', batch.lossMask, [BATCH, length]),
    };
    for (const { name, dims } of runner.parameters) feeds[name] = feedTensor('float32', state.parameters.get(name) as Float32Array, [...dims]);
    const profile = await profileRun(encodeModel(graph), feeds, phaseOf, 2);
    const kernelMs = profile.ops.reduce((sum, op) => sum + op.ms, 0);
    report({
      model: PRESET,
      metric: 'gradient_graph_profile',
      mode,
      batch: BATCH,
      length,
      run_ms: round(profile.runMs),
      kernel_ms: round(kernelMs),
      phase_ms: Object.fromEntries(Object.entries(profile.phaseMs).map(([phase, ms]) => [phase, round(ms)])),
      top_ops: profile.ops.slice(0, 12).map(({ op, ms, nodes }) => ({ op, ms: round(ms), share: round(ms / kernelMs, 3), nodes })),
    });
  } catch (error) {
    report({ model: PRESET, metric: 'gradient_graph_profile', mode, batch: BATCH, length, error: errorMessage(error) });
  }
}

const benchStarted = performance.now();
report({
  metric: 'machine',
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  total_memory_gb: round(totalmem() / 1024 ** 3),
  free_memory_gb: round(freemem() / 1024 ** 3),
  load_average: loadavg().map((load) => round(load)),
});
const { config, weights } = await loadBaseWeights(PRESET);
const peak = await measureMatMulPeak(PEAK_SHAPE, 3);
report({ metric: 'matmul_peak', shape: '[1024,768]x[768,3072] then x[3072,768], 4 pairs', gflop: round(peak.gflop), ms: round(peak.ms), gflop_per_s: round(peak.gflopPerS) });
for (const mode of MODES) await benchMode(config, weights, mode);
report({ metric: 'done', wall_s: round((performance.now() - benchStarted) / 1000, 1), load_average: loadavg().map((load) => round(load)) });
