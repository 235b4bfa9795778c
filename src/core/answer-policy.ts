import type { FaqEntry } from './faq/entry.js';
import type { FaqStore } from './faq/faq-store.js';

/**
 * DESIGN.md's answer policy. BM25 scores have no fixed scale, so each hit's confidence is
 * its score over the score its entry's own question would get: 1 for the question asked
 * word for word. A confident hit answers from the FAQ; relevant hits become the model's
 * context; nothing relevant gets the fallback.
 */
export type AnswerPath = 'faq' | 'model' | 'fallback';

export interface RankedEntry {
  readonly entry: FaqEntry;
  readonly score: number;
  readonly confidence: number;
}

export interface AnswerDecision {
  readonly path: AnswerPath;
  readonly ranked: readonly RankedEntry[];
}

export async function decideAnswer(
  faq: FaqStore,
  text: string,
  settings: { topK: number; confidentMatch: number; relevantMatch: number },
  modelAvailable: boolean,
): Promise<AnswerDecision> {
  const hits = await faq.search(text, settings.topK);
  const ranked: RankedEntry[] = [];
  for (const hit of hits) {
    const own = (await faq.search(hit.entry.question, settings.topK * 4)).find((candidate) => candidate.entry.id === hit.entry.id);
    ranked.push({ entry: hit.entry, score: hit.score, confidence: own && own.score > 0 ? Math.min(1, hit.score / own.score) : 0 });
  }
  ranked.sort((a, b) => b.confidence - a.confidence);
  const best = ranked[0]?.confidence ?? 0;
  if (best >= settings.confidentMatch) return { path: 'faq', ranked };
  const relevant = ranked.filter((hit) => hit.confidence >= settings.relevantMatch);
  if (relevant.length > 0 && modelAvailable) return { path: 'model', ranked: relevant };
  return { path: 'fallback', ranked };
}
