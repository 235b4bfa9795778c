import { createHash } from 'node:crypto';
import { SeededRandom } from '../../model/random.js';
import { type FaqEntry, normalizeQuestion, phrasings } from '../faq/entry.js';
import { noisyQuestions } from './paraphrase-noise.js';

/**
 * The questions fine-tuning never sees and the regression gate asks: some of each entry's
 * alternates (real member phrasings, linked from the inbox) and noisy forms of its question
 * made with the gate's own seed. Training leaves all of them out (training-examples.ts), so
 * the gate measures what a model learned about meaning, not what it memorized.
 */
export interface AlternateSplit {
  readonly trained: string[];
  readonly heldOut: string[];
}

/**
 * Every third alternate from the second on (positions 1, 4, 7, ...) is held out: an entry with
 * 2 or more alternates always keeps one back, and an alternate linked later (appended) moves no
 * other from one side to the other.
 */
export function splitAlternates(entry: Pick<FaqEntry, 'alternates'>): AlternateSplit {
  const trained: string[] = [];
  const heldOut: string[] = [];
  entry.alternates.forEach((alternate, i) => (i % 3 === 1 ? heldOut : trained).push(alternate));
  return { trained, heldOut };
}

/**
 * The entry's held-out alternates, then `noisyCount` noisy forms of its question (fewer for a
 * question too short to vary), none the same as a phrasing of the entry or as each other. The noise is seeded
 * by the question itself, apart from training's seed: the same entry is asked the same way at
 * every evaluation, whatever else the FAQ holds.
 */
export function heldOutQuestions(entry: Pick<FaqEntry, 'question' | 'alternates'>, noisyCount: number): string[] {
  const random = new SeededRandom(createHash('sha256').update(`held-out:${normalizeQuestion(entry.question)}`).digest().readUInt32LE(0));
  return [...splitAlternates(entry).heldOut, ...distinctQuestions(noisyQuestions(entry.question, noisyCount, random), phrasings(entry))];
}

/** `questions` in order, without repeats and without any of `excluded` (compared after normalizeQuestion). */
export function distinctQuestions(questions: readonly string[], excluded: readonly string[] = []): string[] {
  const seen = new Set(excluded.map(normalizeQuestion));
  return questions.filter((question) => {
    const key = normalizeQuestion(question);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
