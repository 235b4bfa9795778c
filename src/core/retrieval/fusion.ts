/**
 * Fusion of a lexical and a dense ranking. Two things come out of it, kept apart because they
 * answer different questions:
 *
 * - the order, by reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): each
 *   ranking gives an entry 1 / (k + its place), places counted from 1, nothing where it is not
 *   listed. Ranks need no common scale, so a ranking whose levels mean little (a cosine where
 *   unrelated sentences already score 0.6) still helps order the entries;
 *
 * - the confidence, from the two levels: each signal's doubt is 1 - its confidence and the
 *   fused doubt is their weighted geometric mean,
 *
 *     fused(l, d) = 1 - (1 - l)^w (1 - d)^(1 - w)        w = lexicalWeight
 *
 *   monotone in each signal; fused(x, x) = x (two weak signals stay weak, unlike noisy-OR's
 *   1 - (1 - l)(1 - d), which makes two 0.5s a 0.75); fused(1, d) = 1; a strong signal alone is
 *   tempered by the other's doubt: fused(0.95, 0) = 0.78 and fused(0.7, 0) = 0.45 with w = 0.5;
 *   min(l, d) <= fused <= max(l, d).
 *
 * Ranking by the confidence itself puts whichever signal is surest first, and a surface match
 * (BM25 sure of the entry that shares the words) then outranks the entry the meaning points to;
 * on the answer benchmark that cost more than dense retrieval gained (docs/answer-quality.md).
 */
export interface RankedEntry {
  readonly entryId: string;
  /** 0..1 */
  readonly confidence: number;
}

export interface FusedEntry {
  readonly entryId: string;
  /** The reciprocal-rank-fusion value the entries are ordered by. */
  readonly rankScore: number;
  /** 0..1, from fuseConfidence. */
  readonly confidence: number;
  /** The inputs; 0 for an entry a ranking did not list. */
  readonly lexical: number;
  readonly dense: number;
}

export interface FusionOptions {
  /** fuseConfidence's w: the lexical signal's share of the confidence; default 0.5. */
  readonly lexicalWeight?: number;
  /** Reciprocal rank fusion's k; default 5. */
  readonly rankOffset?: number;
}

export const DEFAULT_LEXICAL_WEIGHT = 0.5;
/**
 * The k of 1 / (k + place). The paper's 60 was chosen for fusing long web result lists, where
 * the 1st and the 5th place are nearly as good; an FAQ has tens of entries and only the first
 * few places carry evidence, so a small k lets them count. On the answer benchmark the share of
 * paraphrases whose first hit is right hardly moves between k = 1 and k = 60.
 */
export const DEFAULT_RANK_OFFSET = 5;

export function fuseConfidence(lexical: number, dense: number, lexicalWeight = DEFAULT_LEXICAL_WEIGHT): number {
  checkUnit(lexical, 'a lexical confidence');
  checkUnit(dense, 'a dense confidence');
  checkUnit(lexicalWeight, 'the lexical weight');
  return 1 - (1 - lexical) ** lexicalWeight * (1 - dense) ** (1 - lexicalWeight);
}

/**
 * One ranking of the entries either ranking lists. Each ranking lists its entries best first;
 * an entry's place is its position there. Entries whose fused confidence is 0 (in neither
 * ranking with any confidence) are left out. Equal rank scores go to the higher confidence,
 * then to the order the entries came in (the lexical ranking's first).
 */
export function fuseRankings(lexical: readonly RankedEntry[], dense: readonly RankedEntry[], options: FusionOptions = {}): FusedEntry[] {
  const lexicalWeight = options.lexicalWeight ?? DEFAULT_LEXICAL_WEIGHT;
  const rankOffset = options.rankOffset ?? DEFAULT_RANK_OFFSET;
  if (!(rankOffset >= 0 && Number.isFinite(rankOffset))) throw new RangeError(`the rank offset must be a number >= 0, got ${rankOffset}`);
  const lexicalById = byId(lexical, 'lexical');
  const denseById = byId(dense, 'dense');
  const ids = [...new Set([...lexicalById.keys(), ...denseById.keys()])];
  const reciprocal = (listed: { place: number } | undefined) => (listed ? 1 / (rankOffset + listed.place) : 0);
  return ids
    .map((entryId, order) => {
      const l = lexicalById.get(entryId);
      const d = denseById.get(entryId);
      const confidence = fuseConfidence(l?.confidence ?? 0, d?.confidence ?? 0, lexicalWeight);
      const rankScore = reciprocal(l) + reciprocal(d);
      return { fused: { entryId, rankScore, confidence, lexical: l?.confidence ?? 0, dense: d?.confidence ?? 0 }, order };
    })
    .filter(({ fused }) => fused.confidence > 0)
    .sort((a, b) => b.fused.rankScore - a.fused.rankScore || b.fused.confidence - a.fused.confidence || a.order - b.order)
    .map(({ fused }) => fused);
}

function byId(ranking: readonly RankedEntry[], name: string): Map<string, { confidence: number; place: number }> {
  const map = new Map<string, { confidence: number; place: number }>();
  ranking.forEach(({ entryId, confidence }, position) => {
    if (map.has(entryId)) throw new RangeError(`the ${name} ranking lists ${entryId} twice`);
    checkUnit(confidence, `the ${name} confidence of ${entryId}`);
    map.set(entryId, { confidence, place: position + 1 });
  });
  return map;
}

function checkUnit(value: number, what: string): void {
  if (!(value >= 0 && value <= 1)) throw new RangeError(`${what} must be in 0..1, got ${value}`);
}
