import { SeededRandom } from '../../model/random.js';
import type { DenseIndex } from './dense-index.js';

/**
 * What a cosine means depends on the model: unrelated sentences score about 0.1 under
 * all-MiniLM-L6-v2 and about 0.7 under e5. A calibration maps the cosine to a confidence in
 * 0..1 that sits beside BM25's: 0 at or below `unrelated`, 1 at or above `paraphrase`, linear
 * between.
 */
export interface DenseCalibration {
  /** A cosine that different FAQ entries reach with each other: no evidence of a match. */
  readonly unrelated: number;
  /** A cosine that rewordings of one question reach: a match as sure as it gets. */
  readonly paraphrase: number;
}

/**
 * For an FAQ too small to measure (one entry): levels typical of
 * sentence-transformers models, whose paraphrases mostly score above 0.8 and unrelated
 * sentences below 0.3.
 */
export const DEFAULT_CALIBRATION: DenseCalibration = { unrelated: 0.3, paraphrase: 0.8 };

/** The least distance between the two levels, so that no cosine jumps from 0 to 1. */
const MIN_SPAN = 0.05;
/** The share of question pairs whose similarity stays below `unrelated`. */
const UNRELATED_QUANTILE = 0.9;
/** `paraphrase` lies this far from `unrelated` towards 1. */
const PARAPHRASE_SHARE = 0.6;
/** At most this many question pairs are measured (seeded sample), so a large FAQ costs no more. */
const MAX_PAIRS = 20_000;

export function calibratedSimilarity(similarity: number, calibration: DenseCalibration): number {
  const value = (similarity - calibration.unrelated) / (calibration.paraphrase - calibration.unrelated);
  return Math.min(1, Math.max(0, value));
}

/**
 * The FAQ's own calibration, measured on the entries' questions: `unrelated` is the 90th
 * percentile of the similarity between the questions of different entries (a query no closer to
 * an entry than the entries are to each other is no evidence), and `paraphrase` lies 60% of the
 * way from there to 1. A model that finds everything alike (random weights, or a poor fit to
 * the FAQ's language) gets a high `unrelated`, so its cosines count for little.
 *
 * Alternates are left out of both. They come mostly from the inbox, the questions the bot could
 * not answer with confidence, so they are the hardest rewordings, not typical ones: measured on
 * them (Universal Sentence Encoder lite on bench:answers) the paraphrase level fell to the
 * unrelated one, every cosine above it became a sure match, and once the learning loop had
 * linked a paraphrase to most entries, 13% of the other paraphrases were answered wrong instead
 * of 3%. Measured on questions alone, the levels stay put while the loop adds alternates.
 */
export function calibrateFromIndex(index: DenseIndex): DenseCalibration {
  const pairs = questionPairSimilarities(index);
  if (pairs.length === 0) return DEFAULT_CALIBRATION;
  const unrelated = Math.min(quantile(pairs, UNRELATED_QUANTILE), 1 - MIN_SPAN);
  return { unrelated, paraphrase: Math.min(1, Math.max(unrelated + PARAPHRASE_SHARE * (1 - unrelated), unrelated + MIN_SPAN)) };
}

function questionPairSimilarities(index: DenseIndex): number[] {
  const n = index.size;
  const total = (n * (n - 1)) / 2;
  const similarities: number[] = [];
  if (total <= MAX_PAIRS) {
    for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) similarities.push(index.questionSimilarity(a, b));
    return similarities;
  }
  const random = new SeededRandom(n);
  while (similarities.length < MAX_PAIRS) {
    const a = Math.floor(random.next() * n);
    const b = Math.floor(random.next() * n);
    if (a !== b) similarities.push(index.questionSimilarity(a, b));
  }
  return similarities;
}

/** The q-quantile with linear interpolation between order statistics (numpy's default). */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const position = q * (sorted.length - 1);
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below] + (position - below) * (sorted[above] - sorted[below]);
}
