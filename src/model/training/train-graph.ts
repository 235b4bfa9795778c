import type { Gpt2Config } from '../config.js';
import { buildBackward } from '../autodiff/backward.js';
import { attentionWithoutCache, linear, logitsForEveryPosition, plainProjection, type Projection, transformer } from '../gpt2-graph.js';
import { type FloatType, GraphBuilder, type Graph, type Value } from '../onnx/graph.js';
import type { WeightMap } from '../tensor.js';
import { getWeight, weightShapes } from '../files/weights.js';

/**
 * The graphs of one training step, generated per model shape:
 *
 * - the gradient graph: trainable parameters and a batch in; the masked cross-entropy loss,
 *   its token count and the gradient of every trainable parameter out. Forward and backward
 *   in one ONNX Runtime run; micro-batches of one step each run it once.
 * - the AdamW graph (adamw-graph.ts): parameters, optimizer state, summed gradients and the
 *   hyperparameters in; clipped, decayed, bias-corrected updates out.
 *
 * Full fine-tuning feeds every weight as an input. LoRA bakes the frozen weights in as
 * initializers (ONNX Runtime pre-packs them) and trains rank-r adapters beside the four
 * projections of each block: y = x W + b + (x A) B * alpha / r.
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
}

/** Batch inputs of the gradient graph: right-padded rows, next-token targets, a loss mask. */
export const BATCH_INPUTS = ['input_ids', 'attention_mask', 'targets', 'loss_mask'] as const;

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

/**
 * Builds the gradient graph. `frozen` holds the base weights for LoRA (baked in); for full
 * fine-tuning it is omitted and every weight is an input. `floatType` float64 serves tests.
 */
export function buildGradientGraph(
  config: Gpt2Config,
  options: { lora?: LoraSettings; frozen?: WeightMap; floatType?: FloatType } = {},
): GradientGraph {
  const floatType = options.floatType ?? 'float32';
  const g = new GraphBuilder('gpt2_gradient', floatType);
  const { lora } = options;
  const parameters = lora ? loraParameters(config, lora) : fullParameters(config);
  const values = new Map<string, Value>(parameters.map((parameter) => [parameter.name, g.input(parameter.name, floatType, parameter.dims)]));
  const weight = (name: string): Value => {
    const existing = values.get(name);
    if (existing) return existing;
    if (!options.frozen) throw new Error(`weight ${name} is neither trainable nor frozen`);
    const value = g.weight(name, getWeight(options.frozen, name));
    values.set(name, value);
    return value;
  };

  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const attentionMask = g.input('attention_mask', 'int64', ['batch_size', 'sequence_length']);
  const targets = g.input('targets', 'int64', ['batch_size', 'sequence_length']);
  const lossMask = g.input('loss_mask', floatType, ['batch_size', 'sequence_length']);

  // positions 0..T-1 for every row (training rows are right-padded): (1, T)
  const length = g.op('Squeeze', [g.op('Slice', [g.op('Shape', [inputIds]), g.constInt64([1]), g.constInt64([2])]), g.constInt64([0])]);
  const positionIds = g.op('Unsqueeze', [g.op('Range', [g.constInt64(0), length, g.constInt64(1)]), g.constInt64([0])]);

  const project: Projection = lora ? loraProjection(g, weight, lora) : plainProjection(g, weight);
  const hidden = transformer(g, config, weight, project, { inputIds, positionIds, attentionMask }, (_layer, heads, attend) =>
    attentionWithoutCache(g, heads, attend),
  );
  const logits = logitsForEveryPosition(g, config, weight, hidden, inputIds);
  const { loss, tokens } = g.scoped('loss', () => maskedCrossEntropy(g, logits, targets, lossMask, config.vocab_size));

  const gradients = g.scoped('backward', () => buildBackward(g, loss, parameters.map((parameter) => values.get(parameter.name) as Value)));
  g.output(loss, 'loss', floatType, []);
  g.output(tokens, 'tokens', floatType, []);
  for (const parameter of parameters) g.output(gradients.get(parameter.name) as Value, gradientName(parameter.name), floatType, parameter.dims);
  return { graph: g.build(), parameters };
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
 * Mean negative log-likelihood of the targets where loss_mask is 1:
 * sum(mask * -log softmax(logits)[target]) / max(1, sum(mask)). An all-zero mask gives 0.
 */
function maskedCrossEntropy(g: GraphBuilder, logits: Value, targets: Value, lossMask: Value, vocab: number): { loss: Value; tokens: Value } {
  const rows = g.op('Reshape', [logits, g.constInt64([-1, vocab])]); // (N, V)
  const logProbabilities = g.op('LogSoftmax', [rows], { attributes: { axis: -1 } });
  const picked = g.op('GatherElements', [logProbabilities, g.op('Reshape', [targets, g.constInt64([-1, 1])])], { attributes: { axis: 1 } }); // (N, 1)
  const mask = g.op('Reshape', [lossMask, g.constInt64([-1, 1])]);
  const total = g.op('ReduceSum', [g.op('Mul', [g.op('Neg', [picked]), mask])], { attributes: { keepdims: 0 } });
  const tokens = g.op('ReduceSum', [mask], { attributes: { keepdims: 0 } });
  return { loss: g.op('Div', [total, g.op('Max', [tokens, g.constFloat(1)])]), tokens };
}
