import type { Gpt2Config } from '../config.js';
import { buildBackward } from '../autodiff/backward.js';
import { attentionWithoutCache, fastGelu, gelu, linear, logitRows, plainProjection, type Projection, transformer } from '../gpt2-graph.js';
import { ELEMENT_TYPES } from '../onnx/encode.js';
import { type FloatType, GraphBuilder, type Graph, type Value } from '../onnx/graph.js';
import { weightShapes } from '../files/weights.js';
import { type SessionTensor, feedTensor } from '../runtime/session.js';
import type { TrainingBatch } from './data.js';

/**
 * The graphs of one training step, generated per model shape:
 *
 * - the gradient graph: trainable parameters, a batch and the batch's weight in its step in;
 *   the cross-entropy loss over the positions the batch names, their count, every trainable
 *   parameter's gradient of weight x loss and those gradients' squared norm out. Forward and
 *   backward in one ONNX Runtime run; micro-batches of one step each run it once
 *   (step-runner.ts sums them).
 * - the optimizer: AdamW in place (adamw.ts), outside ONNX Runtime.
 *
 * Every weight is an input, trained or not, so ONNX Runtime reads the caller's arrays where they
 * lie: LoRA's frozen weights as initializers would be ONNX Runtime's own copies (with the
 * encoded model and pre-packed matrices, 2.5 GB more at 124M). LoRA trains rank-r adapters
 * beside the four projections of each block: y = x W + b + (x A) B * alpha / r.
 */
export interface LoraSettings {
  readonly rank: number;
  readonly alpha: number;
}

/** The Conv1D layers that get adapters. */
export const LORA_TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;

export interface TrainableParameter {
  readonly name: string;
  readonly dims: readonly number[];
  /** AdamW's decoupled weight decay applies (matrices, not biases, norms or embeddings). */
  readonly decay: boolean;
}

export interface GradientGraph {
  readonly graph: Graph;
  readonly parameters: readonly TrainableParameter[];
  /** The weights fed as inputs but not trained (LoRA's base model). */
  readonly frozen: readonly string[];
}

/**
 * A batch as the gradient graph takes it: right-padded rows (B, T), and the positions whose
 * next-token target counts in the loss, as (row, column) pairs [K, 2] with those K targets.
 */
export function batchFeeds(batch: TrainingBatch): Record<string, SessionTensor> {
  const positions = new BigInt64Array(2 * batch.lossTokens);
  const targets = new BigInt64Array(batch.lossTokens);
  let picked = 0;
  for (let i = 0; i < batch.lossMask.length; i++) {
    if (batch.lossMask[i] === 0) continue;
    positions[2 * picked] = BigInt(Math.floor(i / batch.length));
    positions[2 * picked + 1] = BigInt(i % batch.length);
    targets[picked++] = batch.targets[i];
  }
  if (picked !== batch.lossTokens) throw new RangeError(`the batch counts ${batch.lossTokens} loss tokens and its mask ${picked}`);
  const dims = [batch.batchSize, batch.length];
  return {
    input_ids: feedTensor('int64', batch.inputIds, dims),
    attention_mask: feedTensor('int64', batch.attentionMask, dims),
    loss_positions: feedTensor('int64', positions, [picked, 2]),
    loss_targets: feedTensor('int64', targets, [picked]),
  };
}

/** The scalar input that weighs the batch's gradient: its share of the step's loss tokens. */
export const GRADIENT_WEIGHT = 'gradient_weight';

/** The scalar output: the squared global norm of the weighted gradient (for clipping). */
export const GRADIENT_SQUARE_SUM = 'gradient_square_sum';

export function gradientName(parameter: string): string {
  return `grad.${parameter}`;
}

/** The adapters' names and shapes: h.N.<target>.lora_a [in, r] and .lora_b [r, out]. */
export function loraParameters(config: Gpt2Config, lora: LoraSettings): TrainableParameter[] {
  const shapes = weightShapes(config);
  const parameters: TrainableParameter[] = [];
  for (let layer = 0; layer < config.n_layer; layer++) {
    for (const target of LORA_TARGETS) {
      const [inputs, outputs] = shapes.get(`h.${layer}.${target}.weight`) as number[];
      parameters.push({ name: `h.${layer}.${target}.lora_a`, dims: [inputs, lora.rank], decay: true });
      parameters.push({ name: `h.${layer}.${target}.lora_b`, dims: [lora.rank, outputs], decay: true });
    }
  }
  return parameters;
}

export function fullParameters(config: Gpt2Config): TrainableParameter[] {
  return [...weightShapes(config)].map(([name, dims]) => ({ name, dims, decay: isDecayedWeight(name) }));
}

/** Weight decay on the 2-D matrices of the blocks only (GPT-2 and nanoGPT's choice). */
export function isDecayedWeight(name: string): boolean {
  return /\.(c_attn|c_proj|c_fc)\.weight$/.test(name);
}

/** Builds the gradient graph. `floatType` float64 serves tests. */
export function buildGradientGraph(config: Gpt2Config, options: { lora?: LoraSettings; floatType?: FloatType } = {}): GradientGraph {
  const floatType = options.floatType ?? 'float32';
  const g = new GraphBuilder('gpt2_gradient', floatType);
  const { lora } = options;
  const parameters = lora ? loraParameters(config, lora) : fullParameters(config);
  const trained = new Set(parameters.map((parameter) => parameter.name));
  const shapes = weightShapes(config);
  const frozen = lora ? [...shapes.keys()].filter((name) => !trained.has(name)) : [];
  const values = new Map<string, Value>([
    ...parameters.map((parameter): [string, Value] => [parameter.name, g.input(parameter.name, floatType, parameter.dims)]),
    ...frozen.map((name): [string, Value] => [name, g.input(name, floatType, shapes.get(name) as number[])]),
  ]);
  const weight = (name: string): Value => {
    const value = values.get(name);
    if (!value) throw new Error(`weight ${name} is neither trainable nor frozen`);
    return value;
  };

  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const attentionMask = g.input('attention_mask', 'int64', ['batch_size', 'sequence_length']);
  const lossPositions = g.input('loss_positions', 'int64', ['loss_tokens', 2]);
  const lossTargets = g.input('loss_targets', 'int64', ['loss_tokens']);

  // positions 0..T-1 for every row (training rows are right-padded): (1, T)
  const length = g.op('Squeeze', [g.op('Slice', [g.op('Shape', [inputIds]), g.constInt64([1]), g.constInt64([2])]), g.constInt64([0])]);
  const positionIds = g.op('Unsqueeze', [g.op('Range', [g.constInt64(0), length, g.constInt64(1)]), g.constInt64([0])]);

  const project: Projection = lora ? loraProjection(g, weight, lora) : plainProjection(g, weight);
  const hidden = transformer(
    g,
    config,
    weight,
    project,
    { inputIds, positionIds, attentionMask },
    (_layer, heads, attend) => attentionWithoutCache(g, heads, attend),
    // ONNX Runtime's FastGelu (float only): the backward keeps its input alone instead of the
    // eight tensors the written-out form leaves for it (at 124M, 1 MB a token).
    floatType === 'float32' ? fastGelu : gelu,
  );
  // Only the positions whose target counts go through ln_f and the head, the vocabulary-wide
  // third of the step's work at 124M: in FAQ rows most positions are the prompt's. Logit rows
  // (K, V), never reshaped: a Reshape's input would be read by the backward for its shape.
  const counted = g.op('GatherND', [hidden, lossPositions]); // (K, C)
  const logits = logitRows(g, config, weight, counted);
  const { loss, tokens } = g.scoped('loss', () => meanCrossEntropy(g, logits, lossTargets));

  // Differentiating weight x loss gives weighted gradients at no extra pass over them.
  const weighted = g.op('Mul', [loss, g.input(GRADIENT_WEIGHT, floatType, [])]);
  const gradients = g.scoped('backward', () => buildBackward(g, weighted, parameters.map((parameter) => values.get(parameter.name) as Value)));
  g.output(loss, 'loss', floatType, []);
  g.output(tokens, 'tokens', floatType, []);
  const squares = parameters.map((parameter) => {
    const gradient = gradients.get(parameter.name) as Value;
    g.output(gradient, gradientName(parameter.name), floatType, parameter.dims);
    return g.op('ReduceSumSquare', [gradient], { attributes: { keepdims: 0 } });
  });
  g.output(squares.length === 1 ? squares[0] : g.op('Sum', squares), GRADIENT_SQUARE_SUM, floatType, []);
  return { graph: g.build(), parameters, frozen };
}

/** The projection with an adapter: x W + b + ((x A) B) * alpha / r. */
function loraProjection(g: GraphBuilder, weight: (name: string) => Value, lora: LoraSettings): Projection {
  const scale = g.constFloat(lora.alpha / lora.rank);
  return (x, prefix) => {
    const base = linear(g, x, weight(`${prefix}.weight`), weight(`${prefix}.bias`));
    const low = g.op('MatMul', [g.op('MatMul', [x, weight(`${prefix}.lora_a`)]), weight(`${prefix}.lora_b`)]);
    return g.op('Add', [base, g.op('Mul', [low, scale])]);
  };
}

/**
 * Mean negative log-likelihood of the targets over logit rows (K, V): sum(-log
 * softmax(logits)[target]) / K. ONNX's SoftmaxCrossEntropyLoss keeps the backward pass to two
 * tensors of the logits' size (see its gradient rule). K is at least 1: ONNX Runtime's loss
 * kernel takes no empty input, and the runner runs no batch without a counted target.
 */
function meanCrossEntropy(g: GraphBuilder, rows: Value, targets: Value): { loss: Value; tokens: Value } {
  const total = g.op('SoftmaxCrossEntropyLoss', [rows, targets], { attributes: { reduction: 'sum' } });
  const tokens = g.op('Cast', [g.op('Squeeze', [g.op('Shape', [targets])])], { attributes: { to: ELEMENT_TYPES[g.floatType] } });
  return { loss: g.op('Div', [total, tokens]), tokens };
}
