import type { Logger } from '../../log.js';
import type { Gpt2Config } from '../config.js';
import { ModelError } from '../errors.js';
import { encodeModel } from '../onnx/encode.js';
import { SeededRandom } from '../random.js';
import { type ExecutionProviderChoice, type ModelSession, type SessionTensor, createModelSession, feedTensor } from '../runtime/session.js';
import { type WeightMap, elementCount } from '../tensor.js';
import { ADAMW_SCALARS, type AdamWScalar, buildAdamWGraph, momentName, updatedName, varianceName } from './adamw-graph.js';
import type { TrainingBatch } from './data.js';
import { type LoraSettings, type TrainableParameter, buildGradientGraph, gradientName } from './train-graph.js';

export interface OptimizerSettings {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  /** Global-norm clipping threshold; 0 turns clipping off. */
  readonly clipNorm: number;
}

export const DEFAULT_OPTIMIZER: OptimizerSettings = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01, clipNorm: 1 };

/** Everything a checkpoint needs to continue exactly: parameters, moments and the step count. */
export interface TrainingState {
  readonly parameters: Map<string, Float32Array>;
  readonly moments: Map<string, Float32Array>;
  readonly variances: Map<string, Float32Array>;
  /** Optimizer steps taken so far (AdamW's t is step + 1 on the next one). */
  step: number;
}

export interface StepResult {
  readonly loss: number;
  readonly gradNorm: number;
  readonly lossTokens: number;
}

/**
 * Runs training steps on ONNX Runtime: the gradient graph once per micro-batch (their
 * gradients summed here, weighted by each micro-batch's share of the loss tokens, so the
 * result equals one big batch's), then the AdamW graph once.
 */
export class TrainingStepRunner {
  private constructor(
    readonly parameters: readonly TrainableParameter[],
    private readonly gradientSession: ModelSession,
    private readonly optimizerSession: ModelSession,
    private readonly optimizer: OptimizerSettings,
  ) {}

  static async create(
    config: Gpt2Config,
    base: WeightMap,
    options: { lora?: LoraSettings; optimizer?: OptimizerSettings; executionProvider: ExecutionProviderChoice; logger: Logger },
  ): Promise<TrainingStepRunner> {
    const { graph, parameters } = buildGradientGraph(config, options.lora ? { lora: options.lora, frozen: base } : {});
    const sessionOptions = { executionProvider: options.executionProvider, logger: options.logger };
    const gradientSession = await createModelSession(encodeModel(graph), sessionOptions);
    const optimizerSession = await createModelSession(encodeModel(buildAdamWGraph(parameters)), sessionOptions);
    return new TrainingStepRunner(parameters, gradientSession, optimizerSession, options.optimizer ?? DEFAULT_OPTIMIZER);
  }

  /** Fresh state: the base weights for full fine-tuning; for LoRA, A ~ N(0, 1/r) and B = 0 (the adapters start as a no-op). */
  initialState(base: WeightMap, seed: number): TrainingState {
    const random = new SeededRandom(seed);
    const parameters = new Map<string, Float32Array>();
    for (const parameter of this.parameters) {
      const existing = base.get(parameter.name);
      if (existing) {
        parameters.set(parameter.name, Float32Array.from(existing.data));
      } else {
        const data = new Float32Array(elementCount(parameter.dims));
        if (parameter.name.endsWith('.lora_a')) {
          const std = 1 / Math.sqrt(parameter.dims[1]);
          for (let i = 0; i < data.length; i++) data[i] = random.normal() * std;
        }
        parameters.set(parameter.name, data);
      }
    }
    const zeros = () => new Map(this.parameters.map((parameter) => [parameter.name, new Float32Array(elementCount(parameter.dims))]));
    return { parameters, moments: zeros(), variances: zeros(), step: 0 };
  }

  /** Loss and gradients of one batch, no update (validation uses the loss alone). */
  async lossAndGradients(state: TrainingState, batch: TrainingBatch): Promise<{ loss: number; gradients: Map<string, Float32Array> }> {
    const feeds: Record<string, SessionTensor> = {
      input_ids: feedTensor('int64', batch.inputIds, [batch.batchSize, batch.length]),
      attention_mask: feedTensor('int64', batch.attentionMask, [batch.batchSize, batch.length]),
      targets: feedTensor('int64', batch.targets, [batch.batchSize, batch.length]),
      loss_mask: feedTensor('float32', batch.lossMask, [batch.batchSize, batch.length]),
    };
    for (const parameter of this.parameters) {
      feeds[parameter.name] = feedTensor('float32', state.parameters.get(parameter.name) as Float32Array, [...parameter.dims]);
    }
    let outputs: Record<string, SessionTensor>;
    try {
      outputs = await this.gradientSession.run(feeds);
    } catch (error) {
      throw asMemoryError(error, batch);
    }
    const gradients = new Map(this.parameters.map((parameter) => [parameter.name, outputs[gradientName(parameter.name)].data as Float32Array]));
    return { loss: (outputs.loss.data as Float32Array)[0], gradients };
  }

  /** One optimizer step over `microBatches`; updates `state` in place (only when every number is finite). */
  async step(state: TrainingState, microBatches: readonly TrainingBatch[], learningRate: number): Promise<StepResult> {
    const lossTokens = microBatches.reduce((sum, batch) => sum + batch.lossTokens, 0);
    let loss = 0;
    let summed: Map<string, Float32Array> | null = null;
    for (const batch of microBatches) {
      const share = lossTokens === 0 ? 1 / microBatches.length : batch.lossTokens / lossTokens;
      const result = await this.lossAndGradients(state, batch);
      loss += share * result.loss;
      if (!summed) {
        summed = result.gradients;
        if (share !== 1) for (const gradient of summed.values()) scaleInPlace(gradient, share);
      } else {
        for (const [name, gradient] of result.gradients) addScaled(summed.get(name) as Float32Array, gradient, share);
      }
    }
    if (!summed) throw new ModelError('OPTIONS_INVALID', 'a training step needs at least one micro-batch');
    if (!Number.isFinite(loss)) {
      throw new ModelError('TRAINING_DIVERGED', `the loss is ${loss} at step ${state.step + 1}; the weights were not updated`);
    }

    const scalars: Record<AdamWScalar, number> = {
      learning_rate: learningRate,
      beta1: this.optimizer.beta1,
      beta2: this.optimizer.beta2,
      epsilon: this.optimizer.epsilon,
      weight_decay: this.optimizer.weightDecay,
      clip_norm: this.optimizer.clipNorm,
      step: state.step + 1,
    };
    const feeds: Record<string, SessionTensor> = {};
    for (const name of ADAMW_SCALARS) feeds[name] = feedTensor('float32', Float32Array.of(scalars[name]), []);
    for (const parameter of this.parameters) {
      const dims = [...parameter.dims];
      feeds[parameter.name] = feedTensor('float32', state.parameters.get(parameter.name) as Float32Array, dims);
      feeds[momentName(parameter.name)] = feedTensor('float32', state.moments.get(parameter.name) as Float32Array, dims);
      feeds[varianceName(parameter.name)] = feedTensor('float32', state.variances.get(parameter.name) as Float32Array, dims);
      feeds[gradientName(parameter.name)] = feedTensor('float32', summed.get(parameter.name) as Float32Array, dims);
    }
    const outputs = await this.optimizerSession.run(feeds);
    const gradNorm = (outputs.grad_norm.data as Float32Array)[0];
    if (!Number.isFinite(gradNorm)) {
      throw new ModelError('TRAINING_DIVERGED', `the gradient norm is ${gradNorm} at step ${state.step + 1}; the weights were not updated`);
    }
    for (const parameter of this.parameters) {
      state.parameters.set(parameter.name, outputs[updatedName(parameter.name)].data as Float32Array);
      state.moments.set(parameter.name, outputs[updatedName(momentName(parameter.name))].data as Float32Array);
      state.variances.set(parameter.name, outputs[updatedName(varianceName(parameter.name))].data as Float32Array);
    }
    state.step++;
    return { loss, gradNorm, lossTokens };
  }

  async release(): Promise<void> {
    await this.gradientSession.release();
    await this.optimizerSession.release();
  }
}

function scaleInPlace(values: Float32Array, factor: number): void {
  for (let i = 0; i < values.length; i++) values[i] *= factor;
}

function addScaled(into: Float32Array, values: Float32Array, factor: number): void {
  for (let i = 0; i < into.length; i++) into[i] += values[i] * factor;
}

/** ONNX Runtime reports an allocation failure as a plain error; say what to do about it. */
function asMemoryError(error: unknown, batch: TrainingBatch): unknown {
  const message = error instanceof Error ? error.message : String(error);
  if (/alloc|memory|bad_alloc/i.test(message)) {
    return new ModelError(
      'OUT_OF_MEMORY',
      `a batch of ${batch.batchSize} x ${batch.length} tokens does not fit in memory (${message.split('\n')[0]}); use a smaller --batch with --accumulate to keep the same effective batch, or a shorter context`,
      { cause: error },
    );
  }
  return error;
}
