/**
 * bench/gpu-check.sh's body: a GPT-2 model with random weights in a scratch folder, then
 * generation and a short fine-tune on CUDA and on the CPU, tokens/s side by side as JSON
 * lines on stdout. On CUDA it trusts no request: before measuring, bench/gpu-probe.ts must
 * find the driver, the provider and a session that computes on CUDA; each model must report
 * CUDA as its sessions' provider (the generation worker's ModelInfo, the trainer's log lines);
 * nvidia-smi must count at least half the model's weights in new GPU memory; and CUDA's first
 * training loss must equal the CPU's. Any miss ends the run with a `gpu-check: FAILED` line
 * on stderr and exit code 1; a bad argument, with exit code 2.
 *
 *   --cpu-only        the CPU half alone (no GPU needed)
 *   --preset gpt2     model shape: tiny, gpt2 (124M), gpt2-medium
 *   --prompts 4 --prompt-tokens 32 --new-tokens 128    generation, greedy
 *   --steps 20 --batch 4 --length 64                   fine-tuning, after one untimed step
 */
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { UsageError, integerOption, parseCommandArgs } from '../src/cli/args.js';
import { CodedError } from '../src/coded-error.js';
import type { Logger } from '../src/log.js';
import { END_OF_TEXT_ID, type Gpt2Config, PRESET_NAMES, type PresetName, parameterCount, presetConfig } from '../src/model/config.js';
import { LanguageModel } from '../src/model/runtime/language-model.js';
import { initModel } from '../src/model/files/model-dir.js';
import type { ExecutionProvider } from '../src/model/runtime/session.js';
import type { WeightMap } from '../src/model/tensor.js';
import { type TrainingBatch, makeBatch } from '../src/model/training/data.js';
import { TrainingStepRunner } from '../src/model/training/step-runner.js';
import { GpuCheckError, gpuMemoryUsedMib, probeCuda } from './gpu-probe.js';

const USAGE =
  'usage: bench/gpu-check.sh [--cpu-only] [--preset tiny|gpt2|gpt2-medium] [--prompts N] [--prompt-tokens N] [--new-tokens N] [--steps N] [--batch N] [--length N]';
const LEARNING_RATE = 1e-4;
/** CUDA's first loss may differ from the CPU's by this share of it: summation order and TF32 products move it a little, a wrong kernel far more. */
const LOSS_TOLERANCE = 1e-3;

interface Settings {
  readonly cpuOnly: boolean;
  readonly preset: PresetName;
  readonly prompts: number;
  readonly promptTokens: number;
  readonly newTokens: number;
  readonly steps: number;
  readonly batch: number;
  readonly length: number;
}

interface GenerationFigures {
  readonly texts: string[];
  /** One prompt after another, and all together. */
  readonly sequential: { tokens: number; ms: number };
  readonly batched: { tokens: number; ms: number };
  readonly gpuMemoryRiseMib: number | null;
}

interface FineTuneFigures {
  readonly firstLoss: number;
  readonly lastLoss: number;
  readonly stepMs: number[];
  readonly gpuMemoryRiseMib: number | null;
}

function parseSettings(args: readonly string[]): Settings {
  const { values, positionals } = parseCommandArgs(args, {
    'cpu-only': { type: 'boolean', default: false },
    preset: { type: 'string', default: 'gpt2' },
    prompts: { type: 'string' },
    'prompt-tokens': { type: 'string' },
    'new-tokens': { type: 'string' },
    steps: { type: 'string' },
    batch: { type: 'string' },
    length: { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const preset = values.preset as PresetName;
  if (!PRESET_NAMES.includes(preset)) throw new UsageError(`--preset must be one of ${PRESET_NAMES.join(', ')}, got "${values.preset}"`);
  const settings: Settings = {
    cpuOnly: values['cpu-only'],
    preset,
    prompts: integerOption(values.prompts, 'prompts', 1) ?? 4,
    promptTokens: integerOption(values['prompt-tokens'], 'prompt-tokens', 1) ?? 32,
    newTokens: integerOption(values['new-tokens'], 'new-tokens', 1) ?? 128,
    steps: integerOption(values.steps, 'steps', 1) ?? 20,
    batch: integerOption(values.batch, 'batch', 1) ?? 4,
    length: integerOption(values.length, 'length', 1) ?? 64,
  };
  const positions = presetConfig(preset).n_positions;
  if (settings.promptTokens + settings.newTokens > positions) {
    throw new UsageError(`--prompt-tokens plus --new-tokens must fit ${preset}'s ${positions} positions, got ${settings.promptTokens} + ${settings.newTokens}`);
  }
  if (settings.length > positions) throw new UsageError(`--length must fit ${preset}'s ${positions} positions, got ${settings.length}`);
  return settings;
}

function report(figures: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench: 'gpu-check', ...figures }));
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** Deterministic made-up token ids (any ids will do for timing). */
function madeUpIds(length: number, salt: number): number[] {
  return Array.from({ length }, (_, i) => (i * 7919 + salt * 104729 + 13) % 50000);
}

/** A pino logger that writes to stderr as tunebot's does and keeps the provider each model session reported. */
function providerRecordingLogger(): { logger: Logger; providers: ExecutionProvider[] } {
  const providers: ExecutionProvider[] = [];
  const write = (line: string) => {
    process.stderr.write(line);
    const { provider } = JSON.parse(line) as { provider?: unknown };
    if (provider === 'cpu' || provider === 'cuda') providers.push(provider);
  };
  return { logger: pino({ level: 'info', base: { name: 'gpu-check' } }, { write }), providers };
}

/** nvidia-smi's GPU memory in use, on CUDA only (the CPU runs do not touch the GPU). */
async function gpuMemoryMib(provider: ExecutionProvider): Promise<number | null> {
  return provider === 'cuda' ? gpuMemoryUsedMib() : null;
}

/** Fails unless a CUDA phase left at least half the model's weights' bytes in new GPU memory. */
function requireWeightsOnGpu(phase: string, riseMib: number | null, config: Gpt2Config): void {
  if (riseMib === null) return;
  const weightsMib = (parameterCount(config) * 4) / 2 ** 20;
  if (riseMib < weightsMib / 2) {
    throw new GpuCheckError(
      'CUDA_NOT_USED',
      `${phase} on CUDA added ${round(riseMib)} MiB of GPU memory, under half the model's ${round(weightsMib)} MiB of weights: its work did not run on the GPU`,
    );
  }
}

async function measureGeneration(dir: string, provider: ExecutionProvider, settings: Settings, config: Gpt2Config): Promise<GenerationFigures> {
  const before = await gpuMemoryMib(provider);
  const model = await LanguageModel.load(dir, { executionProvider: provider, logLevel: 'info' });
  try {
    if (model.info.provider !== provider) {
      throw new GpuCheckError('CUDA_NOT_USED', `generation asked for ${provider} and its model session reports ${model.info.provider}`);
    }
    const options = { greedy: true, maxNewTokens: settings.newTokens };
    const prompts = Array.from({ length: settings.prompts }, (_, i) => madeUpIds(settings.promptTokens, i + 1));
    await model.complete(prompts[0], { greedy: true, maxNewTokens: 2 }); // first runs allocate ONNX Runtime's arenas
    const after = await gpuMemoryMib(provider);
    const rise = before === null || after === null ? null : after - before;
    requireWeightsOnGpu('generation', rise, config);

    const texts: string[] = [];
    let sequentialTokens = 0;
    let started = performance.now();
    for (const prompt of prompts) {
      const { text, result } = await model.complete(prompt, options);
      texts.push(text);
      sequentialTokens += result.generatedTokens;
    }
    const sequentialMs = performance.now() - started;
    started = performance.now();
    const together = await Promise.all(prompts.map((prompt) => model.complete(prompt, options)));
    const batchedMs = performance.now() - started;
    const batchedTokens = together.reduce((sum, { result }) => sum + result.generatedTokens, 0);
    return { texts, sequential: { tokens: sequentialTokens, ms: sequentialMs }, batched: { tokens: batchedTokens, ms: batchedMs }, gpuMemoryRiseMib: rise };
  } finally {
    await model.close();
  }
}

/** Batch `index` of the run: `batch` rows of `length` made-up tokens, every target counted. */
function trainingBatch(settings: Settings, index: number): TrainingBatch {
  const rows = Array.from({ length: settings.batch }, (_, row) => ({ ids: madeUpIds(settings.length + 1, index * settings.batch + row), promptLength: 0 }));
  return makeBatch(rows, END_OF_TEXT_ID);
}

async function measureFineTune(config: Gpt2Config, weights: WeightMap, provider: ExecutionProvider, settings: Settings): Promise<FineTuneFigures> {
  const before = await gpuMemoryMib(provider);
  const { logger, providers } = providerRecordingLogger();
  const runner = await TrainingStepRunner.create(config, weights, { executionProvider: provider, logger });
  try {
    if (providers.length === 0 || providers.some((reported) => reported !== provider)) {
      throw new GpuCheckError('CUDA_NOT_USED', `fine-tuning asked for ${provider} and its sessions' log reports [${providers.join(', ')}]`);
    }
    const state = runner.initialState(weights, 0);
    // Untimed: the first step allocates; its loss is the untouched model's, the same on every provider.
    const first = await runner.step(state, [trainingBatch(settings, 0)], LEARNING_RATE);
    const after = await gpuMemoryMib(provider);
    const rise = before === null || after === null ? null : after - before;
    requireWeightsOnGpu('fine-tuning', rise, config);
    const stepMs: number[] = [];
    let lastLoss = first.loss;
    for (let step = 1; step <= settings.steps; step++) {
      const batch = trainingBatch(settings, step);
      const started = performance.now();
      lastLoss = (await runner.step(state, [batch], LEARNING_RATE)).loss;
      stepMs.push(performance.now() - started);
    }
    return { firstLoss: first.loss, lastLoss, stepMs, gpuMemoryRiseMib: rise };
  } finally {
    await runner.release();
  }
}

/** A figure per provider, and CUDA's over the CPU's where there is one. */
function sideBySide(values: Partial<Record<ExecutionProvider, number>>): { cpu: number; cuda: number | null; cuda_vs_cpu: number | null } {
  const cpu = values.cpu as number;
  const cuda = values.cuda ?? null;
  return { cpu: round(cpu), cuda: cuda === null ? null : round(cuda), cuda_vs_cpu: cuda === null ? null : round(cuda / cpu) };
}

function perProvider<T>(figures: Partial<Record<ExecutionProvider, T>>, pick: (figure: T) => number): Partial<Record<ExecutionProvider, number>> {
  return Object.fromEntries(Object.entries(figures).map(([provider, figure]) => [provider, pick(figure as T)]));
}

async function main(settings: Settings): Promise<void> {
  const started = performance.now();
  const { logger } = providerRecordingLogger();
  const probe = settings.cpuOnly ? null : await probeCuda(logger);
  if (probe && probe.problems.length > 0) throw new AggregateError(probe.problems, 'the CUDA checks failed');
  const scratch = await mkdtemp(join(tmpdir(), 'tunebot-gpu-check-'));
  // bench/gpu-check.sh's time limit ends the run with SIGTERM: the model folder still goes.
  const removeScratch = () => rmSync(scratch, { recursive: true, force: true });
  process.once('SIGTERM', () => {
    removeScratch();
    process.exit(143);
  });
  try {
    report({
      metric: 'machine',
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      gpus: probe?.gpus ?? [],
      onnxruntime: ort.env.versions.common,
      node: process.version,
    });
    const modelDir = join(scratch, 'model');
    const { config, weights } = await initModel(modelDir, settings.preset, 0);
    const providers: ExecutionProvider[] = settings.cpuOnly ? ['cpu'] : ['cuda', 'cpu'];
    const model = { model: settings.preset, parameters: parameterCount(config) };

    const generation: Partial<Record<ExecutionProvider, GenerationFigures>> = {};
    for (const provider of providers) generation[provider] = await measureGeneration(modelDir, provider, settings, config);
    const shape = { prompts: settings.prompts, prompt_tokens: settings.promptTokens, new_tokens: settings.newTokens };
    for (const mode of ['sequential', 'batched'] as const) {
      report({
        metric: mode === 'sequential' ? 'generate_tokens_per_s' : 'generate_batched_tokens_per_s',
        ...model,
        ...shape,
        ...sideBySide(perProvider(generation, (figures) => (figures[mode].tokens * 1000) / figures[mode].ms)),
        tokens: perProvider(generation, (figures) => figures[mode].tokens),
        ms: perProvider(generation, (figures) => round(figures[mode].ms)),
      });
    }

    const fineTune: Partial<Record<ExecutionProvider, FineTuneFigures>> = {};
    for (const provider of providers) fineTune[provider] = await measureFineTune(config, weights, provider, settings);
    const stepTokens = settings.batch * settings.length;
    report({
      metric: 'finetune_tokens_per_s',
      ...model,
      batch: settings.batch,
      length: settings.length,
      steps: settings.steps,
      ...sideBySide(perProvider(fineTune, ({ stepMs }) => (stepTokens * stepMs.length * 1000) / stepMs.reduce((sum, ms) => sum + ms, 0))),
      best_step_ms: perProvider(fineTune, ({ stepMs }) => round(Math.min(...stepMs))),
      mean_step_ms: perProvider(fineTune, ({ stepMs }) => round(stepMs.reduce((sum, ms) => sum + ms, 0) / stepMs.length)),
      first_loss: perProvider(fineTune, ({ firstLoss }) => firstLoss),
      last_loss: perProvider(fineTune, ({ lastLoss }) => lastLoss),
    });

    const { cpu, cuda } = fineTune;
    if (cpu && cuda) {
      report({
        metric: 'cuda_evidence',
        ...model,
        weights_mib: round((parameterCount(config) * 4) / 2 ** 20),
        generate_gpu_memory_rise_mib: generation.cuda?.gpuMemoryRiseMib,
        finetune_gpu_memory_rise_mib: cuda.gpuMemoryRiseMib,
        // Greedy text from random weights: near-ties may flip on TF32, so this is reported, not required.
        generate_same_text_as_cpu: generation.cuda?.texts.filter((text, i) => text === generation.cpu?.texts[i]).length,
        first_loss_difference: cuda.firstLoss - cpu.firstLoss,
      });
      if (Math.abs(cuda.firstLoss - cpu.firstLoss) > LOSS_TOLERANCE * Math.abs(cpu.firstLoss)) {
        throw new GpuCheckError('RESULTS_DIFFER', `the untouched model's loss is ${cuda.firstLoss} on CUDA and ${cpu.firstLoss} on the CPU (allowed: ${LOSS_TOLERANCE} of it)`);
      }
    }
    report({ result: 'passed', cpu_only: settings.cpuOnly, wall_s: round((performance.now() - started) / 1000) });
  } finally {
    await probe?.session?.release();
    removeScratch();
  }
}

function failuresOf(error: unknown): unknown[] {
  return error instanceof AggregateError ? error.errors : [error];
}

let settings: Settings;
try {
  settings = parseSettings(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(`gpu-check: ${error.message}\n${USAGE}`);
  process.exit(2);
}
try {
  await main(settings);
} catch (error) {
  for (const failure of failuresOf(error)) {
    const code = failure instanceof CodedError ? failure.code : 'ERROR';
    const message = failure instanceof Error ? failure.message : String(failure);
    report({ result: 'failed', code, reason: message });
    console.error(`gpu-check: FAILED (${code}): ${message}`);
    if (!(failure instanceof CodedError) && failure instanceof Error && failure.stack) console.error(failure.stack);
  }
  process.exitCode = 1;
}
