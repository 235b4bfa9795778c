import { SAMPLING_CANDIDATES } from '../../src/model/gpt2-graph.js';
import type { Candidates } from '../../src/model/runtime/decoder.js';

/**
 * A row's candidates worked out by sorting the whole row: its SAMPLING_CANDIDATES best logits
 * (the lower id first on a tie, as the graph's TopK keeps them), in id order.
 */
export function candidatesBySorting(logits: Float32Array): Candidates {
  const ids = Array.from(logits, (_, id) => id)
    .sort((a, b) => logits[b] - logits[a] || a - b)
    .slice(0, SAMPLING_CANDIDATES)
    .sort((a, b) => a - b);
  return { ids: Int32Array.from(ids), logits: Float32Array.from(ids, (id) => logits[id]) };
}

/** CTRL's repetition penalty on one seen token's logit, in float64: a positive one divided, a negative one multiplied. */
export function penalizedReference(logit: number, penalty: number): number {
  return logit > 0 ? logit / penalty : logit * penalty;
}
