import { type Gpt2Config, parameterCount } from '../config.js';
import { ModelError } from '../errors.js';
import type { LoraSettings } from './train-graph.js';
import { fullParameters, loraParameters } from './train-graph.js';
import { elementCount } from '../tensor.js';

/**
 * What a fine-tuning run needs in memory, known before it starts, so that a batch that cannot
 * fit is refused with one that can instead of the machine swapping or the trainer being killed
 * halfway through an epoch.
 *
 * - the weights, trained or frozen, 4 bytes each (full fine-tuning trains them in place);
 * - per trained parameter 16 bytes: its gradient, the copy onnxruntime-node hands back of it,
 *   and AdamW's two moments;
 * - per token of a micro-batch (rows x its longest row), the gradient graph's working set: the
 *   activations the backward pass reads, about PER_LAYER_FLOATS floats per layer and channel,
 *   and the loss's tensors of the vocabulary's size, about PER_VOCABULARY_FLOATS of them; plus
 *   attention's scores, ATTENTION_COPIES tensors of heads x positions per layer;
 * - the process itself: Node, ONNX Runtime and the session, PROCESS_BYTES.
 * The coefficients come from bench:train's peak resident memory (tiny, 124M and 355M, full and
 * LoRA, 64 and 256 tokens per row), rounded up.
 */
const PER_LAYER_FLOATS = 50;
const PER_VOCABULARY_FLOATS = 10;
const ATTENTION_COPIES = 6;
const PROCESS_BYTES = 300 * 1024 ** 2;

export interface BatchShape {
  readonly batchSize: number;
  /** Tokens in the longest row a micro-batch can hold. */
  readonly length: number;
}

export function trainingBytes(config: Gpt2Config, lora: LoraSettings | undefined, { batchSize, length }: BatchShape): number {
  const trained = (lora ? loraParameters(config, lora) : fullParameters(config)).reduce((sum, parameter) => sum + elementCount(parameter.dims), 0);
  const fixed = PROCESS_BYTES + 4 * parameterCount(config) + 16 * trained;
  const perToken = 4 * (PER_LAYER_FLOATS * config.n_layer * config.n_embd + PER_VOCABULARY_FLOATS * config.vocab_size + ATTENTION_COPIES * config.n_layer * config.n_head * length);
  return fixed + perToken * batchSize * length;
}

/**
 * Refuses a batch whose run would need more than `availableBytes`, naming the largest batch that
 * fits and the accumulation that keeps the effective batch (rows per optimizer step) the same.
 */
export function checkBatchFits(
  config: Gpt2Config,
  lora: LoraSettings | undefined,
  shape: BatchShape & { readonly accumulate: number },
  availableBytes: number,
): void {
  const needed = trainingBytes(config, lora, shape);
  if (needed <= availableBytes) return;
  const gb = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GB`;
  const asked = `a batch of ${shape.batchSize} rows of up to ${shape.length} tokens needs about ${gb(needed)} to train, and ${gb(availableBytes)} is available`;
  let largest = shape.batchSize - 1;
  while (largest > 0 && trainingBytes(config, lora, { batchSize: largest, length: shape.length }) > availableBytes) largest--;
  if (largest === 0) {
    throw new ModelError(
      'OUT_OF_MEMORY',
      `${asked}; even one row does not fit (${gb(trainingBytes(config, lora, { batchSize: 1, length: shape.length }))}): train LoRA adapters (--lora 8) or on shorter examples`,
    );
  }
  const effective = shape.batchSize * shape.accumulate;
  const accumulate = Math.ceil(effective / largest);
  throw new ModelError(
    'OUT_OF_MEMORY',
    `${asked}; the largest batch that fits is ${largest} rows: use --batch ${largest} --accumulate ${accumulate} ` +
      `(fineTune.batchSize ${largest} and fineTune.accumulate ${accumulate} in the config), ${largest * accumulate} rows per step as ${effective} now`,
  );
}
