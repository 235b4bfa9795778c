import type { FaqStore } from './faq/faq-store.js';
import type { SearchHit } from './retrieval/bm25.js';

/**
 * DESIGN.md's answer policy, on the retrieval hits' confidence (bm25.ts): a confident hit
 * answers from the FAQ; relevant hits become the model's context; nothing relevant gets the
 * fallback.
 */
export type AnswerPath = 'faq' | 'model' | 'fallback';

export interface AnswerDecision {
  readonly path: AnswerPath;
  /** Retrieval hits with their confidence, most confident first. */
  readonly ranked: readonly SearchHit[];
}

export async function decideAnswer(
  faq: FaqStore,
  text: string,
  settings: { topK: number; confidentMatch: number; relevantMatch: number },
  modelAvailable: boolean,
): Promise<AnswerDecision> {
  const ranked = [...(await faq.search(text, settings.topK))].sort((a, b) => b.confidence - a.confidence);
  const best = ranked[0]?.confidence ?? 0;
  if (best >= settings.confidentMatch) return { path: 'faq', ranked };
  const relevant = ranked.filter((hit) => hit.confidence >= settings.relevantMatch);
  if (relevant.length > 0 && modelAvailable) return { path: 'model', ranked: relevant };
  return { path: 'fallback', ranked };
}
