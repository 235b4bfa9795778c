import type { FaqEntry } from '../faq/entry.js';
import { terms } from '../retrieval/terms.js';

/**
 * The model's reply is only given when it is one FAQ passage's answer: a reply that stitches
 * sentences of two entries together, or says something no passage says, is a confident wrong
 * answer, the worst a FAQ bot can give. The reply is compared with each passage's answer by the
 * F1 of their terms (terms.ts); the passage it is grounded in must match it closely and clearly
 * better than any other.
 */
export const GROUNDED_F1 = 0.8;
/** How much better than the runner-up the grounded passage must match, so a stitched reply is refused. */
export const GROUNDED_LEAD = 0.2;

/** The passage `reply` repeats, or null when it repeats none, or more than one. */
export function groundedEntry<E extends Pick<FaqEntry, 'answer'>>(reply: string, passages: readonly E[]): E | null {
  const replyTerms = terms(reply);
  if (replyTerms.length === 0) return null;
  const scored = passages.map((passage) => ({ passage, f1: termF1(replyTerms, terms(passage.answer)) })).sort((a, b) => b.f1 - a.f1);
  const [best, second] = scored;
  if (!best || best.f1 < GROUNDED_F1) return null;
  if (second && best.f1 - second.f1 < GROUNDED_LEAD) return null;
  return best.passage;
}

/** F1 of two bags of terms: 2 * shared / (|a| + |b|), counting repeats. */
export function termF1(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const term of b) counts.set(term, (counts.get(term) ?? 0) + 1);
  let shared = 0;
  for (const term of a) {
    const left = counts.get(term) ?? 0;
    if (left > 0) {
      shared++;
      counts.set(term, left - 1);
    }
  }
  return (2 * shared) / (a.length + b.length);
}
