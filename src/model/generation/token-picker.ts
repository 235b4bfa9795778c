import { SAMPLING_CANDIDATES } from '../gpt2-graph.js';
import type { NextTokenScores } from '../runtime/decoder.js';
import { type LogitsProcessor, kthLargest, logitsProcessors, penalized, samplingProcessors } from './logits-processors.js';
import type { ResolvedGenerationOptions } from './options.js';
import { type Sampler, greedySampler, multinomialSampler } from './sampler.js';

/**
 * Picks one sequence's next tokens. Each run hands back every row's SAMPLING_CANDIDATES best
 * logits, and the whole row only when asked (onnxruntime-node copies it out of every run).
 * The candidates serve whenever they hold every token the options can pick — greedy, or top-k
 * with k up to SAMPLING_CANDIDATES — so the processors and the sampler go over 64 values, not
 * the vocabulary: with the bot's default settings that took about 4 ms per sequence and token,
 * between the graph's runs (25 ms of an 8-sequence step). The token is the one the whole row
 * gives: the candidates are in id order, as the samplers walk a row, and the processors after
 * the penalty do not look at ids.
 *
 * A repetition penalty above 1 only lowers the logits of seen tokens, so it is applied to the
 * candidates among them, and the candidates still hold the k best of the whole row while their
 * k-th best beats the floor (no token outside scored above it). When it does not, the whole row
 * decides, which is why runs for a sequence with a penalty return whole rows. (Without a
 * penalty the candidates hold the k best unless more than 64 - k + 1 logits tie at the k-th,
 * where TopK keeps the lower ids and the whole row would keep all of them.)
 */
export class TokenPicker {
  /** Whether this sequence's runs must return whole rows. */
  readonly needsWholeRow: boolean;
  /** How many of the best tokens the options pick from, when the candidates can hold them; else null. */
  private readonly keep: number | null;
  private readonly wholeRowProcessors: LogitsProcessor[];
  private readonly candidateProcessors: LogitsProcessor[];
  private readonly sampler: Sampler;

  constructor(private readonly options: ResolvedGenerationOptions) {
    this.keep = candidatesToKeep(options);
    this.needsWholeRow = this.keep === null || options.repetitionPenalty !== 1;
    this.wholeRowProcessors = logitsProcessors(options);
    this.candidateProcessors = samplingProcessors(options);
    this.sampler = options.greedy ? greedySampler() : multinomialSampler(options.seed);
  }

  /** The next token after `tokens` (the prompt and what was generated), from one run's scores. */
  pick(tokens: readonly number[], scores: NextTokenScores): number {
    const fromCandidates = this.keep === null ? null : this.pickFromCandidates(tokens, scores, this.keep);
    if (fromCandidates !== null) return fromCandidates;
    const { logits } = scores;
    if (!logits) throw new Error('the run was not asked for the whole rows this sequence needs (TokenPicker.needsWholeRow)');
    for (const process of this.wholeRowProcessors) process(tokens, logits);
    return this.sampler.next(logits);
  }

  /** The token from the candidates, or null when they may not hold the `keep` best. */
  private pickFromCandidates(tokens: readonly number[], { candidates }: NextTokenScores, keep: number): number | null {
    const logits = Float32Array.from(candidates.logits);
    const penalty = this.options.repetitionPenalty;
    if (penalty !== 1) {
      const seen = new Set(tokens);
      candidates.ids.forEach((id, i) => {
        if (seen.has(id)) logits[i] = penalized(logits[i], penalty);
      });
      if (!(kthLargest(logits, keep) > candidates.floor)) return null;
    }
    for (const process of this.candidateProcessors) process(tokens, logits);
    return candidates.ids[this.sampler.next(logits)];
  }
}

/** How many of the best tokens `options` pick among, when the candidates can hold them; else null. */
function candidatesToKeep({ greedy, topK, repetitionPenalty }: ResolvedGenerationOptions): number | null {
  // A penalty below 1 raises the seen tokens, which may lie outside the candidates.
  if (repetitionPenalty < 1) return null;
  if (greedy) return 1;
  return topK >= 1 && topK <= SAMPLING_CANDIDATES ? topK : null;
}
