import { createHash } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from '../../log.js';
import { type Gpt2Config, parameterCount } from '../config.js';
import { ModelError } from '../errors.js';
import { saveModel } from '../files/model-dir.js';
import { readModelDir } from '../files/model-files.js';
import type { ExecutionProviderChoice } from '../runtime/session.js';
import type { WeightMap } from '../tensor.js';
import { loadTokenizer } from '../files/tokenizer.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { type Example, countedTargets, dataHash, epochBatches, makeBatch, splitRows, tokenizeExamples } from './data.js';
import { mergeLora } from './lora-merge.js';
import { checkBatchFits } from './memory-plan.js';
import { renderLossCurvePng } from './loss-curve/loss-curve.js';
import { learningRateAt } from './schedule.js';
import { DEFAULT_OPTIMIZER, type OptimizerSettings, TrainingStepRunner, type TrainingState } from './step-runner.js';
import type { LoraSettings } from './train-graph.js';

export interface FineTuneSettings {
  readonly modelDir: string;
  readonly outDir: string;
  /** Where checkpoints go; default `${outDir}.checkpoint`. A run started again resumes from it. */
  readonly checkpointDir?: string;
  readonly lora?: LoraSettings;
  readonly epochs: number;
  /** Stops after this many optimizer steps, whatever the epochs say. */
  readonly maxSteps?: number;
  readonly learningRate: number;
  /** Default: 5% of the steps. */
  readonly warmupSteps?: number;
  readonly minLearningRateRatio: number;
  /** Rows per micro-batch. */
  readonly batchSize: number;
  /** Micro-batches per optimizer step (gradient accumulation). */
  readonly accumulate: number;
  readonly validationFraction: number;
  /** Epochs without a better validation loss before stopping; 0 never stops early. */
  readonly earlyStopPatience: number;
  readonly seed: number;
  readonly checkpointEvery: number;
  readonly optimizer: OptimizerSettings;
  readonly executionProvider: ExecutionProviderChoice;
  /**
   * The memory the run may take, checked before it starts (memory-plan.ts); default: what the
   * system has available then, plus what the trainer already holds.
   */
  readonly memoryBudgetBytes?: number;
}

export const DEFAULT_FINE_TUNE: Omit<FineTuneSettings, 'modelDir' | 'outDir'> = {
  epochs: 3,
  learningRate: 3e-4,
  minLearningRateRatio: 0.1,
  batchSize: 4,
  accumulate: 1,
  validationFraction: 0.1,
  earlyStopPatience: 2,
  seed: 0,
  checkpointEvery: 50,
  optimizer: DEFAULT_OPTIMIZER,
  executionProvider: 'auto',
};

export interface TrainingProgress {
  readonly step: number;
  readonly totalSteps: number;
  readonly epoch: number;
  readonly loss: number;
  readonly gradNorm: number;
  readonly learningRate: number;
  readonly tokensPerSecond: number;
  readonly etaSeconds: number;
}

export interface ValidationPoint {
  readonly epoch: number;
  readonly step: number;
  readonly loss: number;
}

export interface TrainingHistory {
  readonly train: { step: number; loss: number; learningRate: number; gradNorm: number }[];
  readonly validation: ValidationPoint[];
  bestValidationLoss: number | null;
  epochsWithoutImprovement: number;
}

/** What training.json records beside the new model. */
export interface TrainingRecord {
  readonly baseModel: string;
  readonly dataHash: string;
  readonly examples: { readonly train: number; readonly validation: number; readonly cut: number };
  readonly settings: Omit<FineTuneSettings, 'modelDir' | 'outDir' | 'checkpointDir' | 'memoryBudgetBytes'>;
  readonly steps: number;
  readonly stoppedEarly: boolean;
  readonly finalTrainLoss: number;
  readonly validation: readonly ValidationPoint[];
  readonly lossCurve: readonly { step: number; loss: number; learningRate: number }[];
  readonly trainedParameters: number;
  readonly seconds: number;
  readonly tokensPerSecond: number;
  readonly finishedAt: string;
}

export interface FineTuneHooks {
  readonly onProgress?: (progress: TrainingProgress) => void;
  readonly onWarning?: (message: string) => void;
  /** Checked between steps: training stops cleanly at the next step boundary. */
  readonly signal?: AbortSignal;
  readonly logger: Logger;
}

/**
 * The loop around the step graphs: examples -> rows -> seeded epochs of batches -> warmup and
 * cosine decay -> validation each epoch -> early stop -> checkpoints -> a new model folder
 * with training.json and loss-curve.png. The same seed gives the same losses, and a run
 * resumed from its checkpoint continues with the losses an uninterrupted run would have.
 */
export async function fineTune(settings: FineTuneSettings, examples: readonly Example[], hooks: FineTuneHooks): Promise<TrainingRecord> {
  checkSettings(settings);
  if (examples.length === 0) throw new ModelError('DATA_INVALID', 'there are no examples to fine-tune on');
  // Found only after training, an existing folder would throw the finished run away.
  if (await stat(settings.outDir).then(() => true, () => false)) {
    throw new ModelError('OPTIONS_INVALID', `${settings.outDir} already exists; choose another folder for the fine-tuned model`);
  }
  const started = performance.now();
  const { logger } = hooks;
  const base = await readModelDir(settings.modelDir);
  const { config } = base;
  const tokenizer = await loadTokenizer(settings.modelDir, config.vocab_size);
  let cut = 0;
  const rows = tokenizeExamples(examples, (text) => tokenizer.encode(text), tokenizer.eosTokenId, config.n_positions, (message) => {
    cut++;
    hooks.onWarning?.(message);
    logger.warn(message);
  });
  const { train, validation } = splitRows(rows, settings.validationFraction, settings.seed);
  const stepsPerEpoch = Math.ceil(train.length / (settings.batchSize * settings.accumulate));
  const totalSteps = Math.min(settings.maxSteps ?? Infinity, settings.epochs * stepsPerEpoch);
  const schedule = {
    peak: settings.learningRate,
    warmupSteps: settings.warmupSteps ?? Math.min(totalSteps, Math.ceil(totalSteps * 0.05)),
    totalSteps,
    minRatio: settings.minLearningRateRatio,
  };
  const hash = dataHash(examples);
  const longestRow = Math.max(1, ...train.map((row) => row.ids.length - 1));
  // Validation rows run the graph too.
  const lossTokensPerRow = Math.max(1, ...rows.map(countedTargets));
  const memoryBudget = settings.memoryBudgetBytes ?? process.availableMemory() + process.memoryUsage.rss();
  checkBatchFits(
    config,
    settings.lora,
    { batchSize: Math.min(settings.batchSize, train.length), length: longestRow, lossTokensPerRow, accumulate: settings.accumulate },
    memoryBudget,
  );
  const { checkpointDir: _checkpointDir, modelDir: _modelDir, outDir: _outDir, memoryBudgetBytes: _memoryBudget, ...recordedSettings } = settings;
  const runKey = createHash('sha256').update(canonicalJson({ model: resolve(settings.modelDir), hash, recordedSettings })).digest('hex');
  const checkpointDir = settings.checkpointDir ?? `${settings.outDir}.checkpoint`;

  const runner = await TrainingStepRunner.create(config, base.weights, {
    lora: settings.lora,
    optimizer: settings.optimizer,
    executionProvider: settings.executionProvider,
    logger,
  });
  try {
    // The base weights are read for this run alone, so full fine-tuning moves them into the state.
    const state: TrainingState = runner.initialState(base.weights, settings.seed, { inPlace: true });
    const resumed = await loadCheckpoint<TrainingHistory>(checkpointDir, runner.parameters, runKey, state);
    const history: TrainingHistory = resumed?.history ?? { train: [], validation: [], bestValidationLoss: null, epochsWithoutImprovement: 0 };
    let epoch = resumed?.epoch ?? 0;
    let stepInEpoch = resumed?.stepInEpoch ?? 0;
    if (resumed) logger.info({ step: state.step, epoch, checkpointDir }, 'resuming fine-tuning from its checkpoint');
    logger.info({ train: train.length, validation: validation.length, totalSteps, parameters: parameterCount(config), lora: settings.lora ?? null }, 'fine-tuning starts');

    let checkpointSaved = resumed !== null;
    // The speed and the time left count this process's steps only.
    const stepsBefore = history.train.length;
    const checkpoint = async () => {
      await saveCheckpoint(checkpointDir, runner.parameters, state, { runKey, epoch, stepInEpoch, history });
      checkpointSaved = true;
    };
    let stoppedEarly = false;
    let tokensSeen = 0;
    const loopStarted = performance.now();
    training: while (state.step < totalSteps && epoch < settings.epochs) {
      const batches = epochBatches(train, settings.batchSize, settings.seed, epoch, tokenizer.eosTokenId);
      while (stepInEpoch * settings.accumulate < batches.length && state.step < totalSteps) {
        if (hooks.signal?.aborted) {
          await checkpoint();
          throw new ModelError('CANCELLED', `fine-tuning was cancelled at step ${state.step}; the checkpoint in ${checkpointDir} resumes it`);
        }
        const microBatches = batches.slice(stepInEpoch * settings.accumulate, (stepInEpoch + 1) * settings.accumulate);
        const learningRate = learningRateAt(state.step, schedule);
        let result;
        try {
          result = await runner.step(state, microBatches, learningRate);
        } catch (error) {
          if (error instanceof ModelError && error.code === 'TRAINING_DIVERGED') {
            const where = checkpointSaved ? `The last good checkpoint is in ${checkpointDir}` : 'No checkpoint was saved before it';
            throw new ModelError('TRAINING_DIVERGED', `${error.message}. ${where}; try a lower learning rate`, { cause: error });
          }
          throw error;
        }
        stepInEpoch++;
        tokensSeen += microBatches.reduce((sum, batch) => sum + batch.tokens, 0);
        history.train.push({ step: state.step, loss: result.loss, learningRate, gradNorm: result.gradNorm });
        const seconds = (performance.now() - loopStarted) / 1000;
        const stepsDoneHere = history.train.length - stepsBefore;
        hooks.onProgress?.({
          step: state.step,
          totalSteps,
          epoch,
          loss: result.loss,
          gradNorm: result.gradNorm,
          learningRate,
          tokensPerSecond: tokensSeen / seconds,
          etaSeconds: (seconds / stepsDoneHere) * (totalSteps - state.step),
        });
        if (state.step % settings.checkpointEvery === 0 && state.step < totalSteps) await checkpoint();
      }
      if (validation.length > 0) {
        const loss = await validationLoss(runner, state, validation, settings.batchSize, tokenizer.eosTokenId);
        history.validation.push({ epoch, step: state.step, loss });
        logger.info({ epoch, step: state.step, validationLoss: loss }, 'validation');
        if (history.bestValidationLoss === null || loss < history.bestValidationLoss) {
          history.bestValidationLoss = loss;
          history.epochsWithoutImprovement = 0;
        } else {
          history.epochsWithoutImprovement++;
        }
      }
      epoch++;
      stepInEpoch = 0;
      if (settings.earlyStopPatience > 0 && history.epochsWithoutImprovement >= settings.earlyStopPatience) {
        stoppedEarly = true;
        logger.info({ epoch, bestValidationLoss: history.bestValidationLoss }, 'validation loss stopped improving; stopping early');
        break training;
      }
    }

    const seconds = (performance.now() - started) / 1000;
    const record: TrainingRecord = {
      baseModel: settings.modelDir,
      dataHash: hash,
      examples: { train: train.length, validation: validation.length, cut },
      settings: recordedSettings,
      steps: state.step,
      stoppedEarly,
      finalTrainLoss: history.train.at(-1)?.loss ?? Number.NaN,
      validation: history.validation,
      lossCurve: history.train.map(({ step, loss, learningRate }) => ({ step, loss, learningRate })),
      trainedParameters: runner.parameters.reduce((sum, parameter) => sum + parameter.dims.reduce((a, b) => a * b, 1), 0),
      seconds,
      tokensPerSecond: tokensSeen / ((performance.now() - loopStarted) / 1000),
      finishedAt: new Date().toISOString(),
    };
    const weights = finalWeights(config, base.weights, state, settings.lora);
    const picture = renderLossCurvePng(
      { train: history.train.map(({ step, loss }) => ({ step, loss })), validation: history.validation.map(({ step, loss }) => ({ step, loss })) },
      { title: `fine-tuning ${settings.lora ? `LoRA r=${settings.lora.rank}` : 'all weights'}: ${train.length} examples` },
    );
    await saveModel(settings.outDir, { config, weights, generationConfig: base.generationConfig, training: record }, { extraFiles: new Map([['loss-curve.png', picture]]) });
    await rm(checkpointDir, { recursive: true, force: true });
    await rm(`${checkpointDir}.old`, { recursive: true, force: true });
    logger.info({ outDir: settings.outDir, steps: state.step, finalTrainLoss: record.finalTrainLoss, seconds: Math.round(seconds) }, 'fine-tuned model saved');
    return record;
  } finally {
    await runner.release();
  }
}

async function validationLoss(runner: TrainingStepRunner, state: TrainingState, rows: Parameters<typeof makeBatch>[0], batchSize: number, eosId: number): Promise<number> {
  let weighted = 0;
  let tokens = 0;
  for (let start = 0; start < rows.length; start += batchSize) {
    const batch = makeBatch(rows.slice(start, start + batchSize), eosId);
    const { loss } = await runner.lossAndGradients(state, batch);
    weighted += loss * batch.lossTokens;
    tokens += batch.lossTokens;
  }
  return tokens === 0 ? 0 : weighted / tokens;
}

function finalWeights(config: Gpt2Config, base: WeightMap, state: TrainingState, lora: LoraSettings | undefined): WeightMap {
  if (lora) return mergeLora(config, base, state.parameters, lora);
  return new Map([...base].map(([name, tensor]) => [name, { dims: tensor.dims, data: state.parameters.get(name) ?? tensor.data }]));
}

function checkSettings(settings: FineTuneSettings): void {
  const positiveInteger = (name: keyof FineTuneSettings, value: unknown) => {
    if (!Number.isInteger(value) || (value as number) < 1) throw new ModelError('OPTIONS_INVALID', `${name} must be an integer >= 1, got ${String(value)}`);
  };
  positiveInteger('epochs', settings.epochs);
  positiveInteger('batchSize', settings.batchSize);
  positiveInteger('accumulate', settings.accumulate);
  positiveInteger('checkpointEvery', settings.checkpointEvery);
  if (settings.maxSteps !== undefined) positiveInteger('maxSteps', settings.maxSteps);
  if (!(settings.learningRate > 0) || !Number.isFinite(settings.learningRate)) {
    throw new ModelError('OPTIONS_INVALID', `learningRate must be a positive number, got ${settings.learningRate}`);
  }
  if (!(settings.validationFraction >= 0 && settings.validationFraction < 1)) {
    throw new ModelError('OPTIONS_INVALID', `validationFraction must be in [0, 1), got ${settings.validationFraction}`);
  }
  if (settings.lora && (!Number.isInteger(settings.lora.rank) || settings.lora.rank < 1 || !(settings.lora.alpha > 0))) {
    throw new ModelError('OPTIONS_INVALID', `LoRA needs an integer rank >= 1 and alpha > 0, got rank ${settings.lora.rank}, alpha ${settings.lora.alpha}`);
  }
}

/** JSON with sorted keys: the same settings give the same run key whatever order built them. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, field]) => field !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([key, field]) => `${JSON.stringify(key)}:${canonicalJson(field)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
