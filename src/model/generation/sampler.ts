import { SeededRandom } from '../random.js';
import { candidatesByLogit, softmaxOf } from './logits-processors.js';

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

/** Draws from softmax(logits) with a seeded generator, so a seed replays the same text. */
export function multinomialSampler(seed: number): Sampler {
  const random = new SeededRandom(seed);
  return {
    next(logits) {
      const order = candidatesByLogit(logits);
      const probabilities = softmaxOf(logits, order);
      let remaining = random.next();
      for (let i = 0; i < order.length; i++) {
        remaining -= probabilities[i];
        if (remaining < 0) return order[i];
      }
      return order[order.length - 1];
    },
  };
}
