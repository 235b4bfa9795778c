import { type FaqEntry, normalizeQuestion, phrasings } from '../faq/entry.js';
import type { FaqSearch, RankedHit } from '../faq/faq-store.js';
import { groundedEntry } from './grounding.js';

/**
 * DESIGN.md's answer policy, on how certain retrieval is of its best hit: certain enough answers
 * from the FAQ; otherwise the relevant hits (confidence >= relevantMatch) become the model's
 * context, and the model's reply must be one of their answers (grounding.ts); with none, the
 * fallback. Certainty is the best
 * hit's confidence (its score over what its phrasing scores for itself, bm25.ts) times the
 * square root of its lead over the second hit: a question that matches two entries equally well
 * is a guess, however well it matches. Thresholds: docs/answer-quality.md.
 */
export type AnswerPath = 'faq' | 'model' | 'fallback';

export interface AnswerDecision {
  readonly path: AnswerPath;
  /** Retrieval hits, best first: for the model path, only the relevant ones. */
  readonly ranked: readonly RankedHit[];
  /** In [0, 1]: the best hit's confidence times the square root of its lead. */
  readonly certainty: number;
}

export interface AnswerThresholds {
  readonly topK: number;
  readonly confidentMatch: number;
  readonly relevantMatch: number;
}

export async function decideAnswer(faq: FaqSearch, text: string, settings: AnswerThresholds, modelAvailable: boolean): Promise<AnswerDecision> {
  const ranked = await faq.search(text, Math.max(2, settings.topK));
  // A question asked as one of an entry's phrasings is that entry's, however close the next one is.
  const verbatim = ranked[0] !== undefined && normalizeQuestion(phrasings(ranked[0].entry)[ranked[0].phrasing] ?? '') === normalizeQuestion(text);
  const certainty = verbatim ? 1 : certaintyOf(ranked);
  const shown = ranked.slice(0, settings.topK);
  if (certainty >= settings.confidentMatch) return { path: 'faq', ranked: shown, certainty };
  const relevant = shown.filter((hit) => hit.confidence >= settings.relevantMatch);
  if (relevant.length > 0 && modelAvailable) return { path: 'model', ranked: relevant, certainty };
  return { path: 'fallback', ranked: shown, certainty };
}

export interface Answer {
  /** The path that answered: 'model' falls back when the model's reply is grounded in no single passage. */
  readonly path: AnswerPath;
  /** The entry whose answer is the reply; null: the fallback. */
  readonly entry: FaqEntry | null;
  readonly decision: AnswerDecision;
  /** The model's own words, on the model path. */
  readonly generated?: string;
  /** The entry the model's words repeat, on the model path; it answers only when it is retrieval's best hit. */
  readonly chosen?: FaqEntry | null;
}

/**
 * The whole policy, as the engine and the regression gate both run it: decide, and on the model
 * path let the model pick among the relevant passages; its reply counts only when grounded in
 * one of them, and that one is retrieval's best hit. `generate` (null without a live model)
 * asks the model with the decision's passages.
 */
export async function answerQuestion(
  faq: FaqSearch,
  text: string,
  settings: AnswerThresholds,
  generate: ((decision: AnswerDecision) => Promise<string>) | null,
): Promise<Answer> {
  const decision = await decideAnswer(faq, text, settings, generate !== null);
  if (decision.path === 'faq') return { path: 'faq', entry: decision.ranked[0].entry, decision };
  if (decision.path === 'fallback' || !generate) return { path: 'fallback', entry: null, decision };
  const generated = await generate(decision);
  const chosen = groundedEntry(generated, decision.ranked.map((hit) => hit.entry));
  // The model answers only where it agrees with retrieval's best hit: bench:answers measured its
  // choices alone at 5 right to 9 wrong on paraphrases, two signals agreeing at far fewer wrong.
  const entry = chosen !== null && chosen.id === decision.ranked[0].entry.id ? chosen : null;
  return { path: entry ? 'model' : 'fallback', entry, decision, generated, chosen };
}

/** The best hit's confidence times the square root of its score's lead over the second's (1 with no second). */
export function certaintyOf(ranked: readonly Pick<RankedHit, 'score' | 'confidence'>[]): number {
  const [best, second] = ranked;
  if (!best || best.score <= 0) return 0;
  const lead = second ? Math.max(0, best.score - second.score) / best.score : 1;
  return best.confidence * Math.sqrt(lead);
}
