import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ModelError } from '../errors.js';
import { SeededRandom, shuffled } from '../random.js';

/** One fine-tuning example: the model learns to continue prompt with completion. */
export interface Example {
  readonly prompt: string;
  readonly completion: string;
}

export const MAX_EXAMPLES_FILE_BYTES = 200 * 1024 * 1024;

function dataError(path: string, reason: string, cause?: unknown): ModelError {
  return new ModelError('DATA_INVALID', `training data ${path}: ${reason}`, { cause });
}

/** The 1-based line of the first invalid UTF-8 sequence, found line by line since the whole-file decode does not say where. */
function firstInvalidUtf8Line(bytes: Buffer): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let start = 0;
  for (let line = 1; start <= bytes.length; line++) {
    const newline = bytes.indexOf(0x0a, start);
    const end = newline === -1 ? bytes.length : newline;
    try {
      decoder.decode(bytes.subarray(start, end));
    } catch {
      return line;
    }
    start = end + 1;
  }
  return -1;
}

function parseExampleLine(path: string, text: string, line: number): Example {
  const at = `line ${line}`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw dataError(path, `${at} is not valid JSON (${(error as Error).message})`, error);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw dataError(path, `${at} must be a JSON object {"prompt": ..., "completion": ...}, got ${kind}`);
  }
  const { prompt, completion } = value as { prompt?: unknown; completion?: unknown };
  for (const [field, fieldValue] of [['prompt', prompt], ['completion', completion]] as const) {
    if (fieldValue === undefined) throw dataError(path, `${at} has no "${field}" field`);
    if (typeof fieldValue !== 'string') {
      throw dataError(path, `${at}: "${field}" must be a string, got ${fieldValue === null ? 'null' : typeof fieldValue}`);
    }
  }
  if (completion === '') throw dataError(path, `${at}: "completion" is empty; there would be nothing to learn`);
  return { prompt: prompt as string, completion: completion as string };
}

/**
 * Reads JSONL: one {"prompt": ..., "completion": ...} per line; blank lines are skipped and
 * other fields ignored. Every problem is a DATA_INVALID error naming the file and the line.
 */
export async function readExamplesJsonl(path: string): Promise<Example[]> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (error) {
    throw dataError(path, `cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`, error);
  }
  if (size > MAX_EXAMPLES_FILE_BYTES) {
    const megabytes = (size / (1024 * 1024)).toFixed(1);
    throw dataError(path, `the file is ${megabytes} MB, over the ${MAX_EXAMPLES_FILE_BYTES / (1024 * 1024)} MB limit; split it or use fewer examples`);
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw dataError(path, `cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`, error);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw dataError(path, `line ${firstInvalidUtf8Line(bytes)} is not valid UTF-8; save the file as UTF-8`, error);
  }

  const examples: Example[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index].endsWith('\r') ? lines[index].slice(0, -1) : lines[index];
    if (line.trim() === '') continue;
    examples.push(parseExampleLine(path, line, index + 1));
  }
  if (examples.length === 0) throw dataError(path, 'the file holds no examples');
  return examples;
}

/** SHA-256 (hex) of the examples in order; JSON arrays keep the serialization free of key-order and escaping choices. */
export function dataHash(examples: readonly Example[]): string {
  const hash = createHash('sha256');
  for (const { prompt, completion } of examples) hash.update(`${JSON.stringify([prompt, completion])}\n`);
  return hash.digest('hex');
}

/**
 * ids = prompt ++ completion ++ [eos]. The model reads ids[0..n-2] and predicts ids[1..n-1],
 * so a row holds up to contextLength + 1 ids. Every id from index promptLength on is a target
 * that counts in the loss.
 */
export interface TrainingRow {
  readonly ids: readonly number[];
  readonly promptLength: number;
}

/** A row's targets that count in the loss: those at index max(1, promptLength) and after. */
export function countedTargets(row: TrainingRow): number {
  return row.ids.length - Math.max(1, row.promptLength);
}

/** Each cut example is reported by itself up to this many; the rest only in a final count. */
const CUT_WARNINGS_IN_FULL = 10;

/**
 * Builds one row per example. An empty prompt becomes [eos], as at inference (prompt.ts), so
 * the first completion token is learned too. A row over the context is cut: first the prompt
 * from the left, down to its last token; then the completion from its end, the eos with it,
 * since a completion cut short must not teach the model to stop there. Every kept completion
 * token stays a target.
 */
export function tokenizeExamples(
  examples: readonly Example[],
  encode: (text: string) => number[],
  eosId: number,
  contextLength: number,
  onWarning: (message: string) => void,
): TrainingRow[] {
  if (!Number.isInteger(contextLength) || contextLength < 1) {
    throw new ModelError('OPTIONS_INVALID', `contextLength must be a positive integer, got ${contextLength}`);
  }
  const maxIds = contextLength + 1;
  let cutCount = 0;
  const rows = examples.map((example, index): TrainingRow => {
    const encodedPrompt = encode(example.prompt);
    const prompt = encodedPrompt.length === 0 ? [eosId] : encodedPrompt;
    const completion = encode(example.completion);
    if (completion.length === 0) {
      throw new ModelError('DATA_INVALID', `example ${index + 1}: the completion encodes to no tokens`);
    }
    const total = prompt.length + completion.length + 1;
    if (total <= maxIds) return { ids: [...prompt, ...completion, eosId], promptLength: prompt.length };

    const fitsWhole = completion.length + 1 <= maxIds - 1;
    const keptPrompt = fitsWhole ? maxIds - completion.length - 1 : 1;
    const keptCompletion = fitsWhole ? completion.length : maxIds - 1;
    cutCount++;
    if (cutCount <= CUT_WARNINGS_IN_FULL) {
      const droppedPrompt = prompt.length - keptPrompt;
      const what: string[] = [];
      if (droppedPrompt > 0) what.push(`the first ${droppedPrompt} prompt tokens`);
      if (!fitsWhole) what.push(`the last ${completion.length - keptCompletion} completion tokens and the end-of-text`);
      onWarning(
        `example ${index + 1} has a ${prompt.length}-token prompt and a ${completion.length}-token completion, over the context length ${contextLength}: dropped ${what.join(' and ')}`,
      );
    }
    const ids = [...prompt.slice(prompt.length - keptPrompt), ...completion.slice(0, keptCompletion)];
    if (fitsWhole) ids.push(eosId);
    return { ids, promptLength: keptPrompt };
  });
  if (cutCount > CUT_WARNINGS_IN_FULL) {
    onWarning(`${cutCount} of ${examples.length} examples were over the context length ${contextLength} and were cut`);
  }
  return rows;
}

/**
 * B rows of length T, flat (row-major, B*T), right-padded with eos. inputIds is each row's
 * ids without its last; targets is the ids without the first (0 on padding); lossMask is 1 on
 * completion and eos targets. tokens counts the real input positions, lossTokens the masked-in
 * targets (the divisor of a mean loss).
 */
export interface TrainingBatch {
  readonly batchSize: number;
  readonly length: number;
  readonly inputIds: BigInt64Array;
  readonly attentionMask: BigInt64Array;
  readonly targets: BigInt64Array;
  readonly lossMask: Float32Array;
  readonly tokens: number;
  readonly lossTokens: number;
}

function checkRow(row: TrainingRow, index: number): void {
  const { ids, promptLength } = row;
  if (ids.length < 2) throw new ModelError('DATA_INVALID', `row ${index} has ${ids.length} ids; a row needs at least 2 (an input and a target)`);
  if (!Number.isInteger(promptLength) || promptLength < 0 || promptLength >= ids.length) {
    throw new ModelError('DATA_INVALID', `row ${index} has promptLength ${promptLength}; it must be an integer in [0, ${ids.length - 1}]`);
  }
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0) throw new ModelError('DATA_INVALID', `row ${index} holds token id ${id}; ids are non-negative integers`);
  }
}

export function makeBatch(rows: readonly TrainingRow[], eosId: number): TrainingBatch {
  if (rows.length === 0) throw new ModelError('DATA_INVALID', 'a batch needs at least one row');
  rows.forEach(checkRow);
  const batchSize = rows.length;
  const length = Math.max(...rows.map((row) => row.ids.length)) - 1;
  const inputIds = new BigInt64Array(batchSize * length).fill(BigInt(eosId));
  const attentionMask = new BigInt64Array(batchSize * length);
  const targets = new BigInt64Array(batchSize * length);
  const lossMask = new Float32Array(batchSize * length);
  let tokens = 0;
  let lossTokens = 0;
  rows.forEach((row, b) => {
    const { ids } = row;
    const offset = b * length;
    const counted = countedTargets(row);
    // position t predicts ids[t + 1]: the last `counted` positions count
    const firstCounted = ids.length - 1 - counted;
    for (let t = 0; t < ids.length - 1; t++) {
      inputIds[offset + t] = BigInt(ids[t]);
      attentionMask[offset + t] = 1n;
      targets[offset + t] = BigInt(ids[t + 1]);
      if (t >= firstCounted) lossMask[offset + t] = 1;
    }
    tokens += ids.length - 1;
    lossTokens += counted;
  });
  return { batchSize, length, inputIds, attentionMask, targets, lossMask, tokens, lossTokens };
}

function checkSeed(name: string, value: number): void {
  if (!Number.isInteger(value)) throw new ModelError('OPTIONS_INVALID', `${name} must be an integer, got ${value}`);
}

/**
 * Shuffles (seeded) and splits off round(n * validationFraction) rows for validation: at least
 * one when the fraction is above 0 and there are 2 rows or more, and never all of them.
 */
export function splitRows<T>(rows: readonly T[], validationFraction: number, seed: number): { train: T[]; validation: T[] } {
  if (!Number.isFinite(validationFraction) || validationFraction < 0 || validationFraction >= 1) {
    throw new ModelError('OPTIONS_INVALID', `validationFraction must be in [0, 1), got ${validationFraction}`);
  }
  checkSeed('seed', seed);
  const order = shuffled(rows, new SeededRandom(seed));
  const validationCount =
    validationFraction > 0 && rows.length >= 2 ? Math.min(rows.length - 1, Math.max(1, Math.round(rows.length * validationFraction))) : 0;
  return { validation: order.slice(0, validationCount), train: order.slice(validationCount) };
}

/** Mixes the epoch into the seed, so each epoch has its own order and a resumed run can rebuild any epoch's. */
function epochSeed(seed: number, epoch: number): number {
  const mixer = new SeededRandom((seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0);
  return Math.floor(mixer.next() * 4294967296);
}

/** One epoch's batches in a seeded order; the last batch holds the remainder (no row is dropped). */
export function epochBatches(rows: readonly TrainingRow[], batchSize: number, seed: number, epoch: number, eosId: number): TrainingBatch[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ModelError('OPTIONS_INVALID', `batchSize must be a positive integer, got ${batchSize}`);
  }
  checkSeed('seed', seed);
  if (!Number.isInteger(epoch) || epoch < 0) throw new ModelError('OPTIONS_INVALID', `epoch must be a non-negative integer, got ${epoch}`);
  const order = shuffled(rows, new SeededRandom(epochSeed(seed, epoch)));
  const batches: TrainingBatch[] = [];
  for (let start = 0; start < order.length; start += batchSize) {
    batches.push(makeBatch(order.slice(start, start + batchSize), eosId));
  }
  return batches;
}
