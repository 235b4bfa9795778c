import { type FaqEntry, phrasings } from '../faq/entry.js';
import { type Lexicon, type QueryGroup, type Vocabulary } from './lexicon.js';
import { terms, words } from './terms.js';

/**
 * BM25 over FAQ entries with two fields: the phrasings (the question and its alternates, each
 * scored on its own; the best one counts) and the answer. Each field has its own length
 * normalization, and the field scores are summed with weights. A query is a list of groups
 * (lexicon.ts): the terms of one meaning with weights, of which an entry's best counts:
 *
 *   score(entry, query) = questionWeight * max over phrasings p of field(p) + answerWeight * field(answer)
 *   field(f) = sum over groups g of max over (t, w) in g of w * idf(t) * tf(t, f) (k1 + 1) / (tf(t, f) + k1 (1 - b + b len(f) / avgLen))
 *   idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
 *
 * where N is the number of entries and df(t) the number of entries with t in any field. This idf
 * (Lucene's) is never negative, so a term in most entries still adds a little instead of taking away.
 */
export interface Bm25Options {
  k1?: number;
  b?: number;
  questionWeight?: number;
  answerWeight?: number;
}

export interface SearchHit {
  entry: FaqEntry;
  /** questionScore plus the weighted answer part. */
  score: number;
  /** The weighted part of the score that comes from the best phrasing. */
  questionScore: number;
  /** Which phrasing matched best: 0 the question, 1.. its alternates. */
  phrasing: number;
  /**
   * score over the score that phrasing gets when asked word for word: 1 when it is. BM25 scores
   * have no fixed scale; this one does, so thresholds can be set on it.
   */
  confidence: number;
}

interface Field {
  readonly counts: ReadonlyMap<string, number>;
  readonly length: number;
}

interface IndexedEntry {
  readonly phrasings: readonly Field[];
  readonly answer: Field;
}

export class Bm25Index {
  readonly k1: number;
  readonly b: number;
  readonly questionWeight: number;
  readonly answerWeight: number;
  private readonly entries: readonly FaqEntry[];
  private readonly indexed: readonly IndexedEntry[];
  /** term -> the entries that have it, in any field. */
  private readonly postings = new Map<string, number[]>();
  private readonly averagePhrasingLength: number;
  private readonly averageAnswerLength: number;
  private readonly vocabulary: Vocabulary;
  private readonly reverseSynonyms: ReadonlyMap<string, ReadonlySet<string>>;
  /** Per entry and phrasing: the score the phrasing gets for itself, computed on first need. */
  private readonly ownScores: Map<number, number>[];

  /** The index is immutable: when the FAQ changes, build a new one. */
  constructor(
    entries: readonly FaqEntry[],
    private readonly lexicon: Lexicon,
    options: Bm25Options = {},
  ) {
    this.k1 = options.k1 ?? 1.2;
    this.b = options.b ?? 0.75;
    this.questionWeight = options.questionWeight ?? 2;
    this.answerWeight = options.answerWeight ?? 1;
    this.entries = [...entries];
    const surfaces = new Map<string, string>();
    this.indexed = entries.map((entry, index) => {
      const field = (text: string): Field => {
        const found = words(text);
        for (const word of found) surfaces.set(word.surface, word.term);
        const counts = new Map<string, number>();
        for (const { term } of found) counts.set(term, (counts.get(term) ?? 0) + 1);
        return { counts, length: found.length };
      };
      const indexed = { phrasings: phrasings(entry).map(field), answer: field(entry.answer) };
      const entryTerms = new Set([...indexed.answer.counts.keys(), ...indexed.phrasings.flatMap((phrasing) => [...phrasing.counts.keys()])]);
      for (const term of entryTerms) {
        const list = this.postings.get(term);
        if (list) list.push(index);
        else this.postings.set(term, [index]);
      }
      return indexed;
    });
    this.averagePhrasingLength = average(this.indexed.flatMap((entry) => entry.phrasings.map((phrasing) => phrasing.length)));
    this.averageAnswerLength = average(this.indexed.map((entry) => entry.answer.length));
    this.vocabulary = { has: (term) => this.postings.has(term), surfaces };
    this.reverseSynonyms = lexicon.reverseSynonyms(surfaces.keys());
    this.ownScores = this.entries.map(() => new Map());
  }

  get size(): number {
    return this.entries.length;
  }

  /** The idf of one term, as terms.ts writes it. */
  idf(term: string): number {
    const df = this.postings.get(term)?.length ?? 0;
    return Math.log(1 + (this.entries.length - df + 0.5) / (df + 0.5));
  }

  /** The k best entries for the query, best first; entries that share no term with it are left out. */
  search(query: string, k: number): SearchHit[] {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`k must be a whole number >= 0, got ${k}`);
    // Each term's idf folded into its weight once per query, not once per field scored.
    const groups = this.lexicon
      .expand(query, this.vocabulary, this.reverseSynonyms)
      .map((group) => group.map(({ term, weight }) => ({ term, weight: weight * this.idf(term) })));
    const candidates = new Set<number>();
    for (const group of groups) for (const { term } of group) for (const entry of this.postings.get(term) ?? []) candidates.add(entry);
    // Candidates in FAQ order, and a stable sort by score: ties keep that order.
    return [...candidates]
      .sort((a, b) => a - b)
      .map((entry) => {
        const { questionScore, phrasing, answerScore } = this.scoreEntry(entry, groups);
        const score = questionScore + answerScore;
        const own = this.ownScore(entry, phrasing);
        return { entry: this.entries[entry], score, questionScore, phrasing, confidence: own > 0 ? Math.min(1, score / own) : 0 };
      })
      .filter((hit) => hit.score > 0)
      .sort((a, b) => b.score - a.score)
      .slice(0, k);
  }

  private scoreEntry(entry: number, groups: readonly QueryGroup[]): { questionScore: number; phrasing: number; answerScore: number } {
    const { phrasings: fields, answer } = this.indexed[entry];
    let questionScore = 0;
    let phrasing = 0;
    fields.forEach((field, i) => {
      const score = this.questionWeight * this.fieldScore(field, this.averagePhrasingLength, groups);
      if (score > questionScore) [questionScore, phrasing] = [score, i];
    });
    return { questionScore, phrasing, answerScore: this.answerWeight * this.fieldScore(answer, this.averageAnswerLength, groups) };
  }

  /** `groups`' weights include their terms' idf. */
  private fieldScore(field: Field, averageLength: number, groups: readonly QueryGroup[]): number {
    let total = 0;
    for (const group of groups) {
      let best = 0;
      for (const { term, weight } of group) {
        const tf = field.counts.get(term);
        if (tf) best = Math.max(best, weight * this.saturate(tf, field.length, averageLength));
      }
      total += best;
    }
    return total;
  }

  /** The score phrasing `phrasing` of `entry` gets when asked word for word, without expansions. */
  private ownScore(entry: number, phrasing: number): number {
    let own = this.ownScores[entry].get(phrasing);
    if (own === undefined) {
      const text = phrasings(this.entries[entry])[phrasing];
      const groups = [...new Set(terms(text))].map((term) => [{ term, weight: this.idf(term) }]);
      const fields = this.indexed[entry];
      own =
        this.questionWeight * this.fieldScore(fields.phrasings[phrasing], this.averagePhrasingLength, groups) +
        this.answerWeight * this.fieldScore(fields.answer, this.averageAnswerLength, groups);
      this.ownScores[entry].set(phrasing, own);
    }
    return own;
  }

  private saturate(tf: number, length: number, averageLength: number): number {
    const relativeLength = averageLength === 0 ? 1 : length / averageLength;
    return (tf * (this.k1 + 1)) / (tf + this.k1 * (1 - this.b + this.b * relativeLength));
  }
}

function average(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((total, value) => total + value, 0) / values.length;
}
