/**
 * npm run bench:train — training speed and memory of GPT-2-shaped models (random init) on the
 * CPU through TrainingStepRunner, full fine-tuning and LoRA, beside llm.c's CPU trainer and the
 * machine's fp32 MatMul rate measured in the same run, as JSON lines.
 *
 *   BENCH_TRAIN_STEPS=5          timed steps per configuration, after two warm-up steps
 *   BENCH_TRAIN_LENGTHS=64,256   tokens per row (batch 4)
 *   BENCH_TRAIN_MODES=full,lora  lora is rank 8
 *   BENCH_TRAIN_MODEL=gpt2       preset (tiny for a smoke run)
 *   BENCH_TRAIN_MEDIUM=1         0 skips the gpt2-medium full fine-tuning row (4 x 64)
 *   BENCH_TRAIN_PROFILE=1        0 skips the ONNX Runtime profile of the gradient graph
 *   BENCH_TRAIN_FAQ=1            0 skips the FAQ-shaped rows (longest length, each mode)
 *
 * Each configuration runs in a process of its own started as the trainer's is (TRAINER_ENV),
 * so its memory figures are its own: peak resident memory (the kernel's high-water mark)
 * and steady resident memory (after each timed step, averaged), with llm.c's beside them.
 * Step times are reported as mean, best and worst: the mean is what a fine-tune takes.
 *
 * Rows are llm.c's (every position's target counts in the loss) and, beside them, FAQ-shaped:
 * only the answer's last FAQ_LOSS_SHARE of each row counts, as in the FAQ fine-tuning batches
 * tunebot builds (bench/answers' FAQ, default settings: 16.6% of positions), and only those
 * positions go through the head.
 *
 * Work per token (PaLM appendix B, nanoGPT's estimate_mfu): 6 N + 12 L C T for full
 * fine-tuning (N parameters, L layers, C channels, T tokens per row: forward 2 N, backward
 * 4 N, attention's QK^T and AV 4 L C T forward and twice that backward), the head's 6 V C of
 * it for counted positions only. LoRA computes no gradient for the frozen weights: 4 N + 12 L
 * C T + 6 per adapter parameter, the head's 4 V C for counted positions only.
 */
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../src/log.js';
import { END_OF_TEXT_ID, type Gpt2Config, type PresetName, parameterCount, presetConfig } from '../src/model/config.js';
import { readModelDir } from '../src/model/files/model-files.js';
import { initModel } from '../src/model/files/model-dir.js';
import { encodeModel } from '../src/model/onnx/encode.js';
import { type SessionTensor, feedTensor } from '../src/model/runtime/session.js';
import { elementCount } from '../src/model/tensor.js';
import { type TrainingBatch, makeBatch } from '../src/model/training/data.js';
import { TRAINER_ENV } from '../src/model/training/fine-tune-job.js';
import { adamwUpdate, optimizedTensor } from '../src/model/training/adamw.js';
import { DEFAULT_OPTIMIZER, TrainingStepRunner } from '../src/model/training/step-runner.js';
import { GRADIENT_WEIGHT, type LoraSettings, batchFeeds, buildGradientGraph } from '../src/model/training/train-graph.js';
import { measureMatMulPeak } from './matmul-peak.js';
import { profileRun } from './ort-profile.js';

type Mode = 'full' | 'lora';

interface Configuration {
  readonly preset: PresetName;
  readonly mode: Mode;
  readonly length: number;
  /** The share of each row's positions whose target counts in the loss (1: every one). */
  readonly lossShare: number;
}

/** What a configuration's process is handed: the MatMul rate measured just before it started. */
interface Measurement extends Configuration {
  readonly matmulPeakGflopPerS: number;
}

const PRESET = (process.env.BENCH_TRAIN_MODEL ?? 'gpt2') as PresetName;
const STEPS = positiveInteger('BENCH_TRAIN_STEPS', process.env.BENCH_TRAIN_STEPS ?? '5');
const WARM_UP_STEPS = 2;
const LENGTHS = (process.env.BENCH_TRAIN_LENGTHS ?? '64,256').split(',').map((value) => positiveInteger('BENCH_TRAIN_LENGTHS', value));
const MODES = (process.env.BENCH_TRAIN_MODES ?? 'full,lora').split(',') as Mode[];
const MEDIUM = process.env.BENCH_TRAIN_MEDIUM !== '0' && PRESET === 'gpt2';
const PROFILE = process.env.BENCH_TRAIN_PROFILE !== '0';
const FAQ = process.env.BENCH_TRAIN_FAQ !== '0';
/** Positions whose target counts, in the FAQ fine-tuning batches tunebot builds (see above). */
const FAQ_LOSS_SHARE = 0.17;
const BATCH = 4;
const LORA: LoraSettings = { rank: 8, alpha: 16 };
const LEARNING_RATE = 1e-4;
const { beta1, beta2, epsilon, weightDecay } = DEFAULT_OPTIMIZER;
const ADAMW_STEP = { learningRate: LEARNING_RATE, beta1, beta2, epsilon, weightDecay, gradientScale: 1 };
const CACHE_DIR = join('.tunebot', 'bench');
/** GPT-2 124M's MLP at 1024 tokens: [1024, 768] x [768, 3072] and back. */
const PEAK_SHAPE = { rows: 1024, channels: 768, pairs: 4 };
/** llm.c's train_gpt2.c (fp32, OpenMP) on a machine of this kind, batch 4, 124M: tokens per row -> tokens/s. */
const LLMC_TOKENS_PER_S = new Map([
  [64, 58],
  [256, 45],
]);
/** llm.c's resident memory training 124M (parameters, gradients, AdamW's moments and activations in fp32). */
const LLMC_RESIDENT_GB = 1.5;

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

const gigabytes = (bytes: number) => round(bytes / 1024 ** 3);
const best = (values: readonly number[]) => Math.min(...values);
const worst = (values: readonly number[]) => Math.max(...values);
const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] : String(error);
}

/** Deterministic made-up token ids (any ids will do for timing); the last lossShare of each row's targets count. */
function benchBatch(length: number, lossShare: number): TrainingBatch {
  const rows = Array.from({ length: BATCH }, (_, row) => ({
    ids: Array.from({ length: length + 1 }, (_, i) => (i * 7919 + row * 104729 + 13) % 50000),
    promptLength: lossShare === 1 ? 0 : length + 1 - Math.max(1, Math.round(lossShare * length)),
  }));
  return makeBatch(rows, END_OF_TEXT_ID);
}

function flopsPerToken(config: Gpt2Config, mode: Mode, length: number, trainable: number, lossShare: number): number {
  const attention = 12 * config.n_layer * config.n_embd * length;
  const head = config.vocab_size * config.n_embd;
  const n = parameterCount(config) - head + head * lossShare;
  return mode === 'full' ? 6 * n + attention : 4 * n + attention + 6 * trainable;
}

const modelDir = (preset: PresetName) => join(CACHE_DIR, preset);

async function ensureModel(preset: PresetName): Promise<void> {
  if (existsSync(join(modelDir(preset), 'onnx', 'model.onnx'))) return;
  console.error(`creating ${preset} model in ${modelDir(preset)} ...`);
  await initModel(modelDir(preset), preset, 0);
}

/** One configuration, in this process (started by runConfiguration): timed steps, then its memory. */
async function measureConfiguration({ preset, mode, length, lossShare, matmulPeakGflopPerS }: Measurement): Promise<void> {
  const { config, weights } = await readModelDir(modelDir(preset));
  if (length > config.n_positions) throw new Error(`longer than the model's ${config.n_positions} positions`);
  const lora = mode === 'lora' ? LORA : undefined;
  let started = performance.now();
  const runner = await TrainingStepRunner.create(config, weights, { lora, executionProvider: 'cpu', logger: silentLogger });
  const setupS = (performance.now() - started) / 1000;
  const state = runner.initialState(weights, 0, { inPlace: true });
  const trainable = runner.parameters.reduce((sum, { dims }) => sum + elementCount(dims), 0);
  const batch = benchBatch(length, lossShare);
  started = performance.now();
  let loss = 0;
  for (let step = 0; step < WARM_UP_STEPS; step++) loss = (await runner.step(state, [batch], LEARNING_RATE)).loss;
  const warmUpS = (performance.now() - started) / 1000;

  const steps: number[] = [];
  const systemShares: number[] = [];
  const residentBytes: number[] = [];
  let system = 0;
  for (let run = 0; run < STEPS; run++) {
    const cpuBefore = process.cpuUsage();
    const stepStarted = performance.now();
    await runner.step(state, [batch], LEARNING_RATE);
    const ms = performance.now() - stepStarted;
    const used = process.cpuUsage(cpuBefore);
    steps.push(ms);
    system += used.system / 1e6;
    systemShares.push(used.system / 1e3 / ms);
    residentBytes.push(process.memoryUsage().rss);
  }
  const peakBytes = process.resourceUsage().maxRSS * 1024;
  // The step's two parts timed alone, twice: the gradient graph's run, then AdamW over its gradients.
  const forwardBackward: number[] = [];
  const optimizer: number[] = [];
  for (let run = 0; run < 2; run++) {
    let partStarted = performance.now();
    // The gradients land in the state, where AdamW reads them.
    await runner.lossAndGradients(state, batch);
    forwardBackward.push(performance.now() - partStarted);
    partStarted = performance.now();
    for (const { name, decay } of runner.parameters) adamwUpdate(optimizedTensor(state, name, decay), { ...ADAMW_STEP, step: state.step + 1 });
    optimizer.push(performance.now() - partStarted);
  }
  await runner.release();

  const tokens = BATCH * length;
  const tokensPerS = (tokens * 1000) / mean(steps);
  const flops = flopsPerToken(config, mode, length, trainable, lossShare);
  const gflopPerS = (tokensPerS * flops) / 1e9;
  const isGpt2 = preset === 'gpt2';
  // llm.c's rows count every position.
  const llmcTokensPerS = isGpt2 && lossShare === 1 ? LLMC_TOKENS_PER_S.get(length) : undefined;
  report({
    model: preset,
    metric: 'train_step',
    mode,
    batch: BATCH,
    length,
    loss_share: round(batch.lossTokens / (BATCH * length), 3),
    trainable_parameters: trainable,
    steps: STEPS,
    mean_step_ms: round(mean(steps)),
    best_step_ms: round(best(steps)),
    worst_step_ms: round(worst(steps)),
    mean_over_best: round(mean(steps) / best(steps), 3),
    system_cpu_share_of_step: round(mean(systemShares), 3),
    cpu_system_s_per_step: round(system / STEPS),
    forward_backward_ms: round(mean(forwardBackward)),
    optimizer_ms: round(mean(optimizer)),
    tokens_per_s: round(tokensPerS),
    best_tokens_per_s: round((tokens * 1000) / best(steps)),
    gflop_per_token: round(flops / 1e9, 4),
    gflop_per_s: round(gflopPerS),
    matmul_peak_gflop_per_s: round(matmulPeakGflopPerS),
    share_of_matmul_peak: round(gflopPerS / matmulPeakGflopPerS, 3),
    llmc_tokens_per_s: llmcTokensPerS ?? null,
    ratio_tokens_per_s: llmcTokensPerS ? round(tokensPerS / llmcTokensPerS, 3) : null,
    peak_resident_gb: gigabytes(peakBytes),
    steady_resident_gb: gigabytes(mean(residentBytes)),
    // llm.c's figure is for full fine-tuning of 124M; LoRA and other sizes have no peer figure.
    llmc_resident_gb: isGpt2 && mode === 'full' && lossShare === 1 ? LLMC_RESIDENT_GB : null,
    loss: round(loss, 4),
    session_setup_s: round(setupS),
    warm_up_s: round(warmUpS),
    load_average_1m: round(loadavg()[0]),
  });
}

function phaseOf(node: string): string {
  if (node.startsWith('backward/')) return 'backward';
  if (node.startsWith('loss/')) return 'loss';
  return 'forward';
}

/** Where the gradient graph's time goes, by operator and phase (its own process: the profiler's session is another copy). */
async function profileConfiguration({ preset, mode, length, lossShare }: Configuration): Promise<void> {
  const { config, weights } = await readModelDir(modelDir(preset));
  const batch = benchBatch(length, lossShare);
  const { graph, parameters, frozen } = buildGradientGraph(config, { lora: mode === 'lora' ? LORA : undefined });
  const feeds: Record<string, SessionTensor> = {
    ...batchFeeds(batch),
    [GRADIENT_WEIGHT]: feedTensor('float32', Float32Array.of(1), []),
  };
  for (const name of frozen) {
    const weight = weights.get(name) as { dims: number[]; data: Float32Array };
    feeds[name] = feedTensor('float32', weight.data, weight.dims);
  }
  for (const { name, dims } of parameters) feeds[name] = feedTensor('float32', weights.get(name)?.data ?? new Float32Array(elementCount(dims)), [...dims]);
  const profile = await profileRun(encodeModel(graph), feeds, phaseOf, 2);
  const kernelMs = profile.ops.reduce((sum, op) => sum + op.ms, 0);
  report({
    model: preset,
    metric: 'gradient_graph_profile',
    mode,
    batch: BATCH,
    length,
    run_ms: round(profile.runMs),
    kernel_ms: round(kernelMs),
    phase_ms: Object.fromEntries(Object.entries(profile.phaseMs).map(([phase, ms]) => [phase, round(ms)])),
    top_ops: profile.ops.slice(0, 12).map(({ op, ms, nodes }) => ({ op, ms: round(ms), share: round(ms / kernelMs, 3), nodes })),
  });
}

/** Runs one configuration in a child process of this script; its JSON lines pass through. */
function runConfiguration(task: 'measure' | 'profile', configuration: Configuration | Measurement): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), [task, JSON.stringify(configuration)], { execArgv: process.execArgv, env: { ...process.env, ...TRAINER_ENV } });
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      if (code !== 0) report({ ...configuration, metric: task, error: `the configuration's process ended with ${signal ?? `code ${code}`}` });
      resolve();
    });
  });
}

async function main(): Promise<void> {
  const benchStarted = performance.now();
  report({
    metric: 'machine',
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    total_memory_gb: gigabytes(totalmem()),
    free_memory_gb: gigabytes(freemem()),
    load_average: loadavg().map((load) => round(load)),
  });
  const peak = await measureMatMulPeak(PEAK_SHAPE, 3);
  report({ metric: 'matmul_peak', shape: '[1024,768]x[768,3072] then x[3072,768], 4 pairs', gflop: round(peak.gflop), ms: round(peak.ms), gflop_per_s: round(peak.gflopPerS) });
  const { n_positions: positions } = presetConfig(PRESET);
  for (const length of LENGTHS.filter((value) => value > positions)) report({ model: PRESET, length, skipped: `longer than the model's ${positions} positions` });
  const lengths = LENGTHS.filter((length) => length <= positions);
  const configurations: Configuration[] = MODES.flatMap((mode) => lengths.map((length) => ({ preset: PRESET, mode, length, lossShare: 1 })));
  if (FAQ && lengths.length > 0) for (const mode of MODES) configurations.push({ preset: PRESET, mode, length: Math.max(...lengths), lossShare: FAQ_LOSS_SHARE });
  if (MEDIUM) configurations.push({ preset: 'gpt2-medium', mode: 'full', length: 64, lossShare: 1 });
  for (const preset of new Set(configurations.map((configuration) => configuration.preset))) await ensureModel(preset);
  for (const configuration of configurations) {
    // Measured beside each configuration (on a shared machine the rate moves with the load), in
    // this process: in the configuration's own it would leave its buffers in the heap that the
    // training shares (the trainer's glibc maps nothing apart, TRAINER_ENV), 0.3 GB more at its peak.
    const { gflopPerS } = await measureMatMulPeak(PEAK_SHAPE, 2);
    await runConfiguration('measure', { ...configuration, matmulPeakGflopPerS: gflopPerS });
  }
  if (PROFILE && lengths.length > 0) for (const mode of MODES) await runConfiguration('profile', { preset: PRESET, mode, length: Math.max(...lengths), lossShare: 1 });
  report({ metric: 'done', wall_s: round((performance.now() - benchStarted) / 1000, 1), load_average: loadavg().map((load) => round(load)) });
}

const [task, configuration] = process.argv.slice(2);
if (task === 'measure' || task === 'profile') {
  const parsed = JSON.parse(configuration) as Measurement;
  (task === 'measure' ? measureConfiguration(parsed) : profileConfiguration(parsed)).catch((error: unknown) => {
    report({ ...parsed, metric: task, error: errorMessage(error), peak_resident_gb: gigabytes(process.resourceUsage().maxRSS * 1024) });
  });
} else {
  await main();
}
