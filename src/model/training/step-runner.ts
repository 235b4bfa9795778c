import type { Logger } from '../../log.js';
import type { Gpt2Config } from '../config.js';
import { ModelError } from '../errors.js';
import { encodeModel } from '../onnx/encode.js';
import { SeededRandom } from '../random.js';
import { type ExecutionProviderChoice, type ModelSession, type SessionTensor, createModelSession, feedTensor } from '../runtime/session.js';
import { type WeightMap, elementCount } from '../tensor.js';
import { getWeight } from '../files/weights.js';
import { type OptimizedArrays, adamwUpdate, allocateOptimizedArrays, inOptimizerMemory, optimizedTensor } from './adamw.js';
import type { TrainingBatch } from './data.js';
import { GRADIENT_SQUARE_SUM, GRADIENT_WEIGHT, type LoraSettings, type TrainableParameter, batchFeeds, buildGradientGraph, gradientName } from './train-graph.js';

export interface OptimizerSettings {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  /** Global-norm clipping threshold; 0 turns clipping off. */
  readonly clipNorm: number;
}

export const DEFAULT_OPTIMIZER: OptimizerSettings = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01, clipNorm: 1 };

/**
 * A training run's arrays, in the AdamW kernel's memory (allocateOptimizedArrays); the gradients
 * are the last run's, written by the gradient graph where AdamW reads them. Parameters,
 * moments, variances and the step count are what a checkpoint keeps to continue exactly.
 */
export interface TrainingState extends OptimizedArrays {
  /** Optimizer steps taken so far (AdamW's t is step + 1 on the next one). */
  step: number;
}

export interface StepResult {
  readonly loss: number;
  readonly gradNorm: number;
  readonly lossTokens: number;
}

/**
 * Runs training steps: the gradient graph on ONNX Runtime once per micro-batch (each weighted
 * by its share of the step's loss tokens, so their sum equals one big batch's gradient), then
 * AdamW in place. Parameters, moments, variances and gradients live for the whole run and are
 * updated where they lie; a step's only new buffers are the copies of the gradients that
 * onnxruntime-node hands back besides writing them in place, given back at once.
 */
export class TrainingStepRunner {
  private constructor(
    readonly parameters: readonly TrainableParameter[],
    private readonly gradientSession: ModelSession,
    private readonly optimizer: OptimizerSettings,
    /** LoRA's base weights, fed to every run as they are. */
    private readonly frozen: ReadonlyMap<string, SessionTensor>,
  ) {}

  static async create(
    config: Gpt2Config,
    base: WeightMap,
    options: { lora?: LoraSettings; optimizer?: OptimizerSettings; executionProvider: ExecutionProviderChoice; logger: Logger },
  ): Promise<TrainingStepRunner> {
    const { graph, parameters, frozen } = buildGradientGraph(config, { lora: options.lora });
    const gradientSession = await createModelSession(encodeModel(graph), {
      executionProvider: options.executionProvider,
      logger: options.logger,
      // ONNX Runtime's arena keeps the backward pass's working set in blocks of its own from one
      // step to the next, which for LoRA is also the smallest peak (4 x 64: 1.13-1.14 GB, against
      // 1.33 GB taken from glibc's heap, which fragments). Full fine-tuning goes without:
      // onnxruntime-node hands back copies of the gradients (4 bytes a weight) after the run, and
      // with the working set still held by the arena they come on top of it (124M 4 x 64: 3.1
      // GB with it); freed to the heap, the working set's memory takes the copies.
      memoryArena: options.lora !== undefined,
      // Planned as one block, the working set is alive as a whole for the whole run; tensor by
      // tensor it is smaller and the step faster (124M 4 x 64, same window: full 2.74 GB peak
      // and 1.62-1.64 s a step against 3.09-3.10 GB and 1.94-2.07 s; LoRA 1.13 against 1.23 GB).
      memoryPattern: false,
    });
    const frozenFeeds = new Map(frozen.map((name) => {
      const weight = getWeight(base, name);
      return [name, feedTensor('float32', weight.data, weight.dims)];
    }));
    return new TrainingStepRunner(parameters, gradientSession, options.optimizer ?? DEFAULT_OPTIMIZER, frozenFeeds);
  }

  /**
   * Fresh state, its arrays in the AdamW kernel's memory: the base weights copied in for full
   * fine-tuning; for LoRA, A ~ N(0, 1/r) and B = 0 (the adapters start as a no-op). With
   * `inPlace`, the trained entries of `base` are replaced by the state's parameters, so the
   * caller sees the training there, and the arrays they held are given up: at 124M 500 MB.
   */
  initialState(base: WeightMap, seed: number, options: { inPlace?: boolean } = {}): TrainingState {
    const random = new SeededRandom(seed);
    const arrays = allocateOptimizedArrays(this.parameters.map(({ name, dims }) => ({ name, length: elementCount(dims) })));
    const replaced = new Set<ArrayBufferLike>();
    for (const { name, dims } of this.parameters) {
      const data = arrays.parameters.get(name) as Float32Array;
      const existing = base.get(name);
      if (existing) {
        if (existing.data.length !== data.length) {
          throw new ModelError('WEIGHTS_MISMATCH', `${name} has ${existing.data.length} values; the model's shape needs ${data.length}`);
        }
        data.set(existing.data);
        if (options.inPlace) {
          base.set(name, { dims: existing.dims, data });
          if (!inOptimizerMemory(existing.data)) replaced.add(existing.data.buffer);
        }
      } else if (name.endsWith('.lora_a')) {
        const std = 1 / Math.sqrt(dims[1]);
        for (let i = 0; i < data.length; i++) data[i] = random.normal() * std;
      }
    }
    // The replaced weights' memory (one buffer per weights file) is freed now rather than at a
    // garbage collection that may come after the first step has taken as much again, unless a
    // weight left in `base` still lies in it.
    for (const { data } of base.values()) replaced.delete(data.buffer);
    for (const buffer of replaced) if (buffer instanceof ArrayBuffer) buffer.transfer(0);
    return { ...arrays, step: 0 };
  }

  /**
   * Loss and gradients of one batch, no update (validation uses the loss alone). The
   * gradients are the state's: the next run writes over them.
   */
  async lossAndGradients(state: TrainingState, batch: TrainingBatch): Promise<{ loss: number; gradients: ReadonlyMap<string, Float32Array> }> {
    const { loss } = await this.runGradientGraph(state, batch, 1, true);
    return { loss, gradients: state.gradients };
  }

  /** One optimizer step over `microBatches`; updates `state` in place (only when every number is finite). */
  async step(state: TrainingState, microBatches: readonly TrainingBatch[], learningRate: number): Promise<StepResult> {
    if (microBatches.length === 0) throw new ModelError('OPTIONS_INVALID', 'a training step needs at least one micro-batch');
    const lossTokens = microBatches.reduce((sum, batch) => sum + batch.lossTokens, 0);
    const share = (batch: TrainingBatch) => (lossTokens === 0 ? 1 / microBatches.length : batch.lossTokens / lossTokens);
    const first = await this.runGradientGraph(state, microBatches[0], share(microBatches[0]), true);
    let loss = share(microBatches[0]) * first.loss;
    let squareSum = first.squareSum;
    for (const batch of microBatches.slice(1)) {
      const next = await this.runGradientGraph(state, batch, share(batch), false);
      loss += share(batch) * next.loss;
      squareSum = 0;
      for (const [name, gradient] of next.gradients) {
        squareSum += addInto(state.gradients.get(name) as Float32Array, gradient);
        discard(gradient);
      }
    }
    if (!Number.isFinite(loss)) {
      throw new ModelError('TRAINING_DIVERGED', `the loss is ${loss} at step ${state.step + 1}; the weights were not updated`);
    }
    const gradNorm = Math.sqrt(squareSum);
    if (!Number.isFinite(gradNorm)) {
      throw new ModelError('TRAINING_DIVERGED', `the gradient norm is ${gradNorm} at step ${state.step + 1}; the weights were not updated`);
    }
    const { beta1, beta2, epsilon, weightDecay, clipNorm } = this.optimizer;
    const adamwStep = {
      learningRate,
      beta1,
      beta2,
      epsilon,
      weightDecay,
      gradientScale: clipNorm > 0 && gradNorm > clipNorm ? clipNorm / gradNorm : 1,
      step: state.step + 1,
    };
    for (const { name, decay } of this.parameters) adamwUpdate(optimizedTensor(state, name, decay), adamwStep);
    state.step++;
    return { loss, gradNorm, lossTokens };
  }

  release(): Promise<void> {
    return this.gradientSession.release();
  }

  /**
   * One run of the gradient graph: the loss, and the gradients of weight x loss with their
   * squared norm; written into the state's gradients when `inPlace`, else returned.
   */
  private async runGradientGraph(
    state: TrainingState,
    batch: TrainingBatch,
    weight: number,
    inPlace: boolean,
  ): Promise<{ loss: number; gradients: Map<string, Float32Array>; squareSum: number }> {
    // A batch with no target in its loss has a zero loss and zero gradients; ONNX Runtime's loss
    // kernel takes no empty batch, so nothing runs.
    if (batch.lossTokens === 0) {
      if (inPlace) for (const gradient of state.gradients.values()) gradient.fill(0);
      const zeros = inPlace ? [] : this.parameters.map((parameter): [string, Float32Array] => [parameter.name, new Float32Array(elementCount(parameter.dims))]);
      return { loss: 0, gradients: new Map(zeros), squareSum: 0 };
    }
    const feeds: Record<string, SessionTensor> = {
      ...batchFeeds(batch),
      [GRADIENT_WEIGHT]: feedTensor('float32', Float32Array.of(weight), []),
      ...Object.fromEntries(this.frozen),
    };
    for (const parameter of this.parameters) {
      feeds[parameter.name] = feedTensor('float32', state.parameters.get(parameter.name) as Float32Array, [...parameter.dims]);
    }
    const into = inPlace
      ? Object.fromEntries(this.parameters.map((parameter) => [gradientName(parameter.name), feedTensor('float32', state.gradients.get(parameter.name) as Float32Array, [...parameter.dims])]))
      : {};
    let outputs: Record<string, SessionTensor>;
    try {
      outputs = await this.gradientSession.run(feeds, { into });
    } catch (error) {
      throw asMemoryError(error, batch);
    }
    const gradients = new Map(this.parameters.map((parameter) => [parameter.name, outputs[gradientName(parameter.name)].data as Float32Array]));
    // The copies onnxruntime-node hands back of what it wrote in place are not needed.
    if (inPlace) for (const gradient of gradients.values()) discard(gradient);
    return {
      loss: (outputs.loss.data as Float32Array)[0],
      gradients: inPlace ? new Map() : gradients,
      squareSum: (outputs[GRADIENT_SQUARE_SUM].data as Float32Array)[0],
    };
  }
}

/**
 * Gives an array's memory back now rather than at V8's next collection, which can come after
 * the next step's gradients are out (at 124M, 500 MB more resident).
 */
function discard(array: Float32Array): void {
  if (array.buffer instanceof ArrayBuffer) array.buffer.transfer(0);
}

/** into += values, element by element; returns the squared norm of the sum (for clipping). */
function addInto(into: Float32Array, values: Float32Array): number {
  let squares = 0;
  for (let i = 0; i < into.length; i++) {
    into[i] += values[i];
    squares += into[i] * into[i];
  }
  return squares;
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
