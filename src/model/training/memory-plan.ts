import { type Gpt2Config, parameterCount } from '../config.js';
import { ModelError } from '../errors.js';
import { type LoraSettings, fullParameters, loraParameters } from './train-graph.js';
import { elementCount } from '../tensor.js';

/**
 * What a fine-tuning run needs in memory, known before it starts, so that a batch that cannot
 * fit is refused with one that can instead of the machine swapping or the trainer being killed
 * halfway through an epoch. At its peak a run holds:
 *
 * - the process itself (Node, ONNX Runtime, the session): PROCESS_BYTES;
 * - the weights, trained or frozen, 4 bytes each (full fine-tuning moves them into AdamW's
 *   memory and frees what they were read into);
 * - per trained parameter 12 bytes: its gradient and AdamW's two moments;
 * - the larger of two things that do not meet: the backward pass's working set while it runs,
 *   and at its end the copies onnxruntime-node hands back of the gradients, counted twice
 *   (8 bytes a trained parameter): glibc does not always give one step's freed copies to the
 *   next (gpt2-medium 4 x 64 peaked at 6.9-7.5 GB in most runs, 8.1 GB in one).
 *   The working set, per token of a micro-batch (rows x its longest row): about
 *   PER_LAYER_FLOATS floats per layer and channel (the activations the backward reads) and
 *   ATTENTION_FLOATS per layer, head and position (attention's scores); and per position whose
 *   target counts in the loss (the only ones the head runs on), PER_VOCABULARY_FLOATS of the
 *   vocabulary's size (the logits and the loss's gradient). In FAQ rows those are the answer's,
 *   about a sixth of the positions (at 124M, 8 x 270 tokens: 2.6 GB of logits if every one counted).
 *
 * The coefficients cover every peak bench:train measured, with 5% to spare at 355M 4 x 64 (its
 * 8.1 GB run), 9% at 124M full 4 x 256 (peaks of 3.9 to 6.0 GB there: the trainer's glibc
 * keeps every block in one heap, TRAINER_ENV, and the logits-sized ones fragment it), 11% at
 * 124M full 4 x 64 and 26% or more for LoRA (whose working set ONNX Runtime's arena holds).
 * The per-layer figure is three times llm.c's activations (16 floats per layer and channel):
 * ONNX Runtime frees each value after its last reader, and the heap does not reuse every freed
 * block.
 */
const PER_LAYER_FLOATS = 48;
const PER_VOCABULARY_FLOATS = 6;
const ATTENTION_FLOATS = 9;
const PROCESS_BYTES = 600 * 1024 ** 2;

export interface BatchShape {
  readonly batchSize: number;
  /** Tokens in the longest row a micro-batch can hold. */
  readonly length: number;
  /** The most positions of one row whose target counts in the loss (default: all `length`). */
  readonly lossTokensPerRow?: number;
}

export function trainingBytes(config: Gpt2Config, lora: LoraSettings | undefined, { batchSize, length, lossTokensPerRow = length }: BatchShape): number {
  const trained = (lora ? loraParameters(config, lora) : fullParameters(config)).reduce((sum, parameter) => sum + elementCount(parameter.dims), 0);
  const perPosition = 4 * (PER_LAYER_FLOATS * config.n_layer * config.n_embd + ATTENTION_FLOATS * config.n_layer * config.n_head * length);
  const perLossToken = 4 * PER_VOCABULARY_FLOATS * config.vocab_size;
  const workingSet = batchSize * (perPosition * length + perLossToken * Math.min(lossTokensPerRow, length));
  return PROCESS_BYTES + 4 * parameterCount(config) + 12 * trained + Math.max(8 * trained, workingSet);
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
  while (largest > 0 && trainingBytes(config, lora, { ...shape, batchSize: largest }) > availableBytes) largest--;
  if (largest === 0) {
    throw new ModelError(
      'OUT_OF_MEMORY',
      `${asked}; even one row does not fit (${gb(trainingBytes(config, lora, { ...shape, batchSize: 1 }))}): train LoRA adapters (--lora 8) or on shorter examples`,
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
