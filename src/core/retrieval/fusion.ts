/**
 * Score fusion of a lexical and a dense ranking into one confidence. Each signal's doubt is
 * 1 - its confidence; the fused doubt is their weighted geometric mean:
 *
 *   fused(l, d) = 1 - (1 - l)^w (1 - d)^(1 - w)        w = lexicalWeight
 *
 * - monotone: never lower when either signal rises (strictly higher while the other is below 1);
 * - agreement keeps the level: fused(x, x) = x (two weak signals stay weak, unlike noisy-OR's
 *   1 - (1 - l)(1 - d), which makes two 0.5s a 0.75);
 * - one sure signal is enough: fused(1, d) = 1; a strong one alone is tempered by the other's
 *   doubt: fused(0.95, 0) = 0.78 and fused(0.7, 0) = 0.45 with w = 0.5;
 * - it is a mean: min(l, d) <= fused <= max(l, d).
 */
export interface RankedEntry {
  readonly entryId: string;
  /** 0..1 */
  readonly confidence: number;
}

export interface FusedEntry {
  readonly entryId: string;
  /** 0..1, from fuseConfidence. */
  readonly confidence: number;
  /** The inputs; 0 for an entry a ranking did not list. */
  readonly lexical: number;
  readonly dense: number;
}

export const DEFAULT_LEXICAL_WEIGHT = 0.5;

export function fuseConfidence(lexical: number, dense: number, lexicalWeight = DEFAULT_LEXICAL_WEIGHT): number {
  checkUnit(lexical, 'a lexical confidence');
  checkUnit(dense, 'a dense confidence');
  checkUnit(lexicalWeight, 'the lexical weight');
  return 1 - (1 - lexical) ** lexicalWeight * (1 - dense) ** (1 - lexicalWeight);
}

/**
 * One ranking of the entries either ranking lists, most confident first. An entry missing
 * from a ranking counts 0 there (BM25 lists every entry that shares a term with the query; the
 * dense ranking should list every entry it has a confidence for). Entries that fuse to 0 are
 * left out. Ties go to the higher of the two inputs, then to the order the entries came in.
 */
export function fuseRankings(
  lexical: readonly RankedEntry[],
  dense: readonly RankedEntry[],
  lexicalWeight = DEFAULT_LEXICAL_WEIGHT,
): FusedEntry[] {
  const lexicalById = byId(lexical, 'lexical');
  const denseById = byId(dense, 'dense');
  const ids = [...new Set([...lexicalById.keys(), ...denseById.keys()])];
  return ids
    .map((entryId, order) => {
      const l = lexicalById.get(entryId) ?? 0;
      const d = denseById.get(entryId) ?? 0;
      return { fused: { entryId, confidence: fuseConfidence(l, d, lexicalWeight), lexical: l, dense: d }, order };
    })
    .filter(({ fused }) => fused.confidence > 0)
    .sort(
      (a, b) =>
        b.fused.confidence - a.fused.confidence ||
        Math.max(b.fused.lexical, b.fused.dense) - Math.max(a.fused.lexical, a.fused.dense) ||
        a.order - b.order,
    )
    .map(({ fused }) => fused);
}

function byId(ranking: readonly RankedEntry[], name: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const { entryId, confidence } of ranking) {
    if (map.has(entryId)) throw new RangeError(`the ${name} ranking lists ${entryId} twice`);
    checkUnit(confidence, `the ${name} confidence of ${entryId}`);
    map.set(entryId, confidence);
  }
  return map;
}

function checkUnit(value: number, what: string): void {
  if (!(value >= 0 && value <= 1)) throw new RangeError(`${what} must be in 0..1, got ${value}`);
}
