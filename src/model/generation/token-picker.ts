import { SAMPLING_CANDIDATES } from '../gpt2-graph.js';
import type { NextTokenScores } from '../runtime/decoder.js';
import { type LogitsProcessor, logitsProcessors } from './logits-processors.js';
import type { ResolvedGenerationOptions } from './options.js';
import { type Sampler, greedySampler, multinomialSampler } from './sampler.js';

/**
 * Picks one sequence's next tokens. Each run hands back every row's SAMPLING_CANDIDATES best
 * logits, after the repetition penalty (the graph applies it), and the whole row only when
 * asked (onnxruntime-node copies it out of every run that asks: 1.6 MB a step at 8 sequences).
 * The candidates serve whenever they hold every token the options can pick — greedy, or top-k
 * with k up to SAMPLING_CANDIDATES — so the processors and the sampler go over 64 values, not
 * the vocabulary: with the bot's default settings the whole row took about 4 ms per sequence
 * and token, between the graph's runs. The token is the one the whole row gives: the
 * candidates are in id order, as the samplers walk a row, and the processors do not look at
 * ids. (The one difference: when more than 64 - k + 1 logits tie at the k-th, TopK keeps the
 * lower ids and the whole row would keep all of them.)
 */
export class TokenPicker {
  /** Whether this sequence's runs must return whole rows. */
  readonly needsWholeRow: boolean;
  private readonly processors: LogitsProcessor[];
  private readonly sampler: Sampler;

  constructor(options: ResolvedGenerationOptions) {
    this.needsWholeRow = !candidatesHoldEveryPick(options);
    this.processors = logitsProcessors(options);
    this.sampler = options.greedy ? greedySampler() : multinomialSampler(options.seed);
  }

  /** The next token from one run's scores for this sequence. */
  pick({ candidates, logits }: NextTokenScores): number {
    if (!this.needsWholeRow) {
      const row = Float32Array.from(candidates.logits);
      for (const process of this.processors) process(row);
      return candidates.ids[this.sampler.next(row)];
    }
    if (!logits) throw new Error('the run was not asked for the whole rows this sequence needs (TokenPicker.needsWholeRow)');
    for (const process of this.processors) process(logits);
    return this.sampler.next(logits);
  }
}

/** Whether every token `options` can pick is among a row's SAMPLING_CANDIDATES best. */
function candidatesHoldEveryPick({ greedy, topK }: ResolvedGenerationOptions): boolean {
  return greedy || (topK >= 1 && topK <= SAMPLING_CANDIDATES);
}
