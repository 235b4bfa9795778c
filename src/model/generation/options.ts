import { ModelError } from '../errors.js';

/** What a caller may ask of one generation. Every field has a default; see DEFAULT_GENERATION. */
export interface GenerationOptions {
  /** Tokens to generate at most (>= 1). Generation also ends at the model's context length. */
  readonly maxNewTokens?: number;
  /** Always take the most likely token; temperature, topK and topP are then ignored. */
  readonly greedy?: boolean;
  /** > 0; below 1 sharpens, above 1 flattens. 0 means greedy. */
  readonly temperature?: number;
  /** Sample among the k most likely tokens; 0 turns it off. */
  readonly topK?: number;
  /** Nucleus sampling: the smallest set of tokens whose probability reaches p, in (0, 1]. */
  readonly topP?: number;
  /** > 0; values above 1 make tokens already in the prompt or output less likely (CTRL's rule). */
  readonly repetitionPenalty?: number;
  /** Generation ends before the first occurrence of any of these; the stop text is not emitted. */
  readonly stop?: readonly string[];
  /** Same seed, same prompt, same model: same text. */
  readonly seed?: number;
}

export type ResolvedGenerationOptions = Required<GenerationOptions>;

export const DEFAULT_GENERATION: Omit<ResolvedGenerationOptions, 'seed'> = {
  maxNewTokens: 64,
  greedy: false,
  temperature: 1,
  topK: 50,
  topP: 1,
  repetitionPenalty: 1,
  stop: [],
};

/** Applies defaults and rejects out-of-range values with the range that is allowed. */
export function resolveGenerationOptions(options: GenerationOptions = {}): ResolvedGenerationOptions {
  const merged = { ...DEFAULT_GENERATION, seed: Math.floor(Math.random() * 2 ** 32), ...stripUndefined(options) };
  const fail = (message: string): never => {
    throw new ModelError('OPTIONS_INVALID', message);
  };
  if (!Number.isInteger(merged.maxNewTokens) || merged.maxNewTokens < 1) {
    fail(`maxNewTokens must be an integer >= 1, got ${merged.maxNewTokens}`);
  }
  if (!Number.isFinite(merged.temperature) || merged.temperature < 0) {
    fail(`temperature must be a number >= 0 (0 means greedy), got ${merged.temperature}`);
  }
  if (!Number.isInteger(merged.topK) || merged.topK < 0) fail(`topK must be an integer >= 0 (0 turns it off), got ${merged.topK}`);
  if (!Number.isFinite(merged.topP) || merged.topP <= 0 || merged.topP > 1) fail(`topP must be in (0, 1], got ${merged.topP}`);
  if (!Number.isFinite(merged.repetitionPenalty) || merged.repetitionPenalty <= 0) {
    fail(`repetitionPenalty must be a number > 0 (1 turns it off), got ${merged.repetitionPenalty}`);
  }
  if (!Array.isArray(merged.stop) || merged.stop.some((s) => typeof s !== 'string' || s.length === 0)) {
    fail('stop must be a list of non-empty strings');
  }
  if (!Number.isInteger(merged.seed) || merged.seed < 0) fail(`seed must be an integer >= 0, got ${merged.seed}`);
  return { ...merged, greedy: merged.greedy || merged.temperature === 0 };
}

function stripUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
