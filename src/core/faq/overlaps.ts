import { terms } from '../retrieval/terms.js';
import { type FaqEntry, phrasings } from './entry.js';

/**
 * Entries that ask nearly the same thing but answer differently: such a question has two answers,
 * and retrieval picks one by a hair. Reported at import and on /faq add, never refused (exact
 * repeats are: checkUnique). Two phrasings are near-identical when, as retrieval sees them
 * (terms.ts: stems, stopwords dropped), their term sets have a Jaccard similarity of at least
 * NEAR_JACCARD, or one holds all of the other's terms, at least MIN_CONTAINED of them, and at most
 * one more ("reset my password?" and "reset my password by email?"; a single word is in too many
 * questions to tell: "What is tunebot?" and "What does tunebot remember?" ask different things).
 */
export const NEAR_JACCARD = 0.8;
export const MIN_CONTAINED = 2;

/**
 * The least Jaccard similarity that a phrasing of `size` terms has with any phrasing it is
 * reported with: NEAR_JACCARD, or less under the containment rule, with a partner of `size` - 1
 * terms ((size - 1) / size) or of `size` + 1 (size / (size + 1)).
 */
function leastJaccard(size: number): number {
  const smaller = size - 1 >= MIN_CONTAINED ? (size - 1) / size : 1;
  const larger = size >= MIN_CONTAINED ? size / (size + 1) : 1;
  return Math.min(NEAR_JACCARD, smaller, larger);
}

export interface OverlapSide {
  id: string;
  /** The phrasing (question or alternate) that nearly repeats the other side's. */
  phrasing: string;
}

/** `first` comes before `second` in the FAQ's order. */
export interface Overlap {
  first: OverlapSide;
  second: OverlapSide;
}

interface Phrasing {
  entry: number;
  text: string;
  /** Distinct terms, rarest first (ties by term), as prefix filtering needs. */
  terms: string[];
}

/**
 * Each pair of entries (at most once) with near-identical phrasings and different answers, in
 * the entries' order; with `among`, only the pairs with at least one entry of those ids.
 */
export function findOverlaps(entries: readonly FaqEntry[], among?: ReadonlySet<string>): Overlap[] {
  const answers = entries.map((entry) => entry.answer.replace(/\s+/gu, ' ').trim().toLowerCase());
  const sets = entries.flatMap((entry, index) => phrasings(entry).map((text) => ({ entry: index, text, terms: [...new Set(terms(text))] })));
  const frequency = new Map<string, number>();
  for (const { terms: list } of sets) for (const term of list) frequency.set(term, (frequency.get(term) ?? 0) + 1);
  const byRarity = (a: string, b: string): number => (frequency.get(a) ?? 0) - (frequency.get(b) ?? 0) || (a < b ? -1 : a > b ? 1 : 0);
  const phrasingList: Phrasing[] = sets.filter((set) => set.terms.length > 0).map((set) => ({ ...set, terms: set.terms.sort(byRarity) }));

  // Prefix filtering (Bayardo et al., "Scaling up all pairs similarity search", 2007): with terms in
  // one global order, two sets whose Jaccard is at least t_x and t_y share a term among the first
  // |x| - ceil(t_x |x|) + 1 of x and the first |y| - ceil(t_y |y|) + 1 of y. And where they first
  // meet, at x[i] = y[j], they can share at most 1 + min(|x| - i - 1, |y| - j - 1) terms, as no
  // earlier term is shared (PPJoin's positional filter, Xiao et al. 2008): a pair that cannot
  // reach the overlap the rule needs is dropped there, unchecked.
  const byPrefixTerm = new Map<string, { phrasing: number; position: number }[]>();
  const found = new Map<string, Overlap & { order: [number, number] }>();
  // The phrasing that last met each candidate: a candidate is judged where it first meets.
  const metBy = new Int32Array(phrasingList.length).fill(-1);
  phrasingList.forEach((phrasing, index) => {
    const size = phrasing.terms.length;
    // The epsilon keeps 0.8 * 15 (12.000000000000002 in floating point) at 12.
    const prefixLength = size - Math.ceil(leastJaccard(size) * size - 1e-9) + 1;
    for (let i = 0; i < prefixLength; i++) {
      const term = phrasing.terms[i];
      const list = byPrefixTerm.get(term) ?? [];
      for (const { phrasing: candidate, position } of list) {
        if (metBy[candidate] === index) continue;
        metBy[candidate] = index;
        const other = phrasingList[candidate];
        if (1 + Math.min(size - i - 1, other.terms.length - position - 1) < neededOverlap(size, other.terms.length)) continue;
        const [a, b] = other.entry < phrasing.entry ? [other, phrasing] : [phrasing, other];
        if (a.entry === b.entry || answers[a.entry] === answers[b.entry]) continue;
        if (among && !among.has(entries[a.entry].id) && !among.has(entries[b.entry].id)) continue;
        const key = `${a.entry} ${b.entry}`;
        if (found.has(key) || !nearlyTheSame(a.terms, b.terms)) continue;
        found.set(key, {
          first: { id: entries[a.entry].id, phrasing: a.text },
          second: { id: entries[b.entry].id, phrasing: b.text },
          order: [a.entry, b.entry],
        });
      }
      if (list.length === 0) byPrefixTerm.set(term, list);
      list.push({ phrasing: index, position: i });
    }
  });
  return [...found.values()].sort((x, y) => x.order[0] - y.order[0] || x.order[1] - y.order[1]).map(({ first, second }) => ({ first, second }));
}

/** The fewest terms that sets of these sizes must share to be near-identical. */
function neededOverlap(a: number, b: number): number {
  // o / (a + b - o) >= J  <=>  o >= J (a + b) / (1 + J)
  const byJaccard = Math.ceil((NEAR_JACCARD * (a + b)) / (1 + NEAR_JACCARD) - 1e-9);
  return Math.abs(a - b) <= 1 && Math.min(a, b) >= MIN_CONTAINED ? Math.min(byJaccard, Math.min(a, b)) : byJaccard;
}

/** The rule in this file's comment, on two sets of distinct terms. */
export function nearlyTheSame(a: readonly string[], b: readonly string[]): boolean {
  const inA = new Set(a);
  const shared = b.filter((term) => inA.has(term)).length;
  const smaller = Math.min(a.length, b.length);
  const larger = Math.max(a.length, b.length);
  if (smaller === 0) return false;
  return shared / (a.length + b.length - shared) >= NEAR_JACCARD || (shared === smaller && smaller >= MIN_CONTAINED && larger - smaller <= 1);
}
