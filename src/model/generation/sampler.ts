import { SeededRandom } from '../random.js';
import { softmaxNormalizer } from './logits-processors.js';

/** Picks the next token from processed logits. */
export interface Sampler {
  next(logits: Float32Array): number;
}

/** The most likely token; the lowest id wins a tie, so the choice never depends on anything else. */
export function greedySampler(): Sampler {
  return {
    next(logits) {
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      return best;
    },
  };
}

/**
 * Draws from softmax(logits) with a seeded generator, so a seed replays the same text. The
 * draw walks the vocabulary in id order: no sort, so sampling the full distribution stays cheap.
 */
export function multinomialSampler(seed: number): Sampler {
  const random = new SeededRandom(seed);
  return {
    next(logits) {
      const { max, sum } = softmaxNormalizer(logits);
      let remaining = random.next() * sum;
      let last = 0;
      for (let i = 0; i < logits.length; i++) {
        if (logits[i] === -Infinity) continue;
        remaining -= Math.exp(logits[i] - max);
        if (remaining < 0) return i;
        last = i;
      }
      return last;
    },
  };
}
