import type { FaqEntry } from '../faq/entry.js';

/**
 * BM25 over FAQ entries with two fields. Each field is scored on its own, with its own length
 * normalization, and the field scores are summed with weights:
 *
 *   score(entry, query) = sum over fields f of weight_f * sum over query terms t of
 *       idf(t) * tf(t, f) * (k1 + 1) / (tf(t, f) + k1 * (1 - b + b * len(f) / avgLen(f)))
 *
 *   idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
 *
 * where N is the number of entries, df(t) the number of entries with t in either field, and each
 * query term counts once. This idf (Lucene's) is never negative, so a term in most entries
 * still adds a little instead of taking away.
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
  /** The weighted part of the score that comes from the question field. */
  questionScore: number;
  /**
   * score over the score the entry's own question gets: 1 when its question is asked word for
   * word. BM25 scores have no fixed scale; this one does, so thresholds can be set on it.
   */
  confidence: number;
}

interface Posting {
  entry: number;
  questionTf: number;
  answerTf: number;
}

export class Bm25Index {
  readonly k1: number;
  readonly b: number;
  readonly questionWeight: number;
  readonly answerWeight: number;
  private readonly entries: readonly FaqEntry[];
  private readonly postings = new Map<string, Posting[]>();
  private readonly questionLengths: number[] = [];
  private readonly answerLengths: number[] = [];
  private readonly averageQuestionLength: number;
  private readonly averageAnswerLength: number;
  private readonly ownScores: Float64Array;

  /** The index is immutable: when the FAQ changes, build a new one. */
  constructor(entries: readonly FaqEntry[], options: Bm25Options = {}) {
    this.k1 = options.k1 ?? 1.2;
    this.b = options.b ?? 0.75;
    this.questionWeight = options.questionWeight ?? 2;
    this.answerWeight = options.answerWeight ?? 1;
    this.entries = [...entries];
    entries.forEach((entry, index) => {
      const question = termCounts(tokenize(entry.question));
      const answer = termCounts(tokenize(entry.answer));
      this.questionLengths.push(sum(question.values()));
      this.answerLengths.push(sum(answer.values()));
      for (const term of new Set([...question.keys(), ...answer.keys()])) {
        const posting = { entry: index, questionTf: question.get(term) ?? 0, answerTf: answer.get(term) ?? 0 };
        const list = this.postings.get(term);
        if (list) list.push(posting);
        else this.postings.set(term, [posting]);
      }
    });
    this.averageQuestionLength = average(this.questionLengths);
    this.averageAnswerLength = average(this.answerLengths);
    this.ownScores = new Float64Array(this.entries.length).fill(Number.NaN);
  }

  get size(): number {
    return this.entries.length;
  }

  /** The idf of one term, as tokenize writes it. */
  idf(term: string): number {
    const df = this.postings.get(term)?.length ?? 0;
    return Math.log(1 + (this.entries.length - df + 0.5) / (df + 0.5));
  }

  /** The k best entries for the query, best first; entries that share no term with it are left out. */
  search(query: string, k: number): SearchHit[] {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`k must be a whole number >= 0, got ${k}`);
    const { scores, questionScores, matched } = this.score(query);
    return [...matched]
      .sort((a, b) => scores[b] - scores[a] || a - b)
      .slice(0, k)
      .map((entry) => {
        const own = this.ownScore(entry);
        return {
          entry: this.entries[entry],
          score: scores[entry],
          questionScore: questionScores[entry],
          confidence: own > 0 ? Math.min(1, scores[entry] / own) : 0,
        };
      });
  }

  /** Every entry's score for `query`, and which entries share a term with it. */
  private score(query: string): { scores: Float64Array; questionScores: Float64Array; matched: Set<number> } {
    const scores = new Float64Array(this.entries.length);
    const questionScores = new Float64Array(this.entries.length);
    const matched = new Set<number>();
    for (const term of new Set(tokenize(query))) {
      const postings = this.postings.get(term);
      if (!postings) continue;
      const idf = this.idf(term);
      for (const { entry, questionTf, answerTf } of postings) {
        const questionPart =
          this.questionWeight * idf * this.saturate(questionTf, this.questionLengths[entry], this.averageQuestionLength);
        const answerPart = this.answerWeight * idf * this.saturate(answerTf, this.answerLengths[entry], this.averageAnswerLength);
        questionScores[entry] += questionPart;
        scores[entry] += questionPart + answerPart;
        matched.add(entry);
      }
    }
    return { scores, questionScores, matched };
  }

  /** The score entry `entry` gets for its own question; computed once per entry and index. */
  private ownScore(entry: number): number {
    if (Number.isNaN(this.ownScores[entry])) this.ownScores[entry] = this.score(this.entries[entry].question).scores[entry];
    return this.ownScores[entry];
  }

  private saturate(tf: number, length: number, averageLength: number): number {
    if (tf === 0) return 0;
    const relativeLength = averageLength === 0 ? 1 : length / averageLength;
    return (tf * (this.k1 + 1)) / (tf + this.k1 * (1 - this.b + this.b * relativeLength));
  }
}

/** Small on purpose: words that say nothing about which entry is meant. Negations stay. */
const STOPWORDS = new Set(
  (
    'a an the and or but if then than so of to in on at by for with from as into about ' +
    'is are was were be been being am do does did has have had i me my you your we our us ' +
    'it its this that these those there here what which who whom how can could should would ' +
    'will shall may might s t'
  ).split(' '),
);

/** A word starts with a letter or digit; marks may follow (so a variation selector after an emoji is no word). */
const WORD = /[\p{L}\p{N}][\p{L}\p{N}\p{M}]*/gu;
/** Scripts written without spaces between words: their runs are cut into overlapping pairs of characters. */
const UNSPACED_RUN = /([\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\u30fc]+)|([^\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\u30fc]+)/gu;

/**
 * Terms of a text: NFKC, lower case, runs of letters, digits and marks (so any script), English
 * stopwords dropped and English plurals folded; Chinese and Japanese as character bigrams.
 * Emoji and punctuation make no terms.
 */
export function tokenize(text: string): string[] {
  const tokens: string[] = [];
  // Variation selectors and the keycap mark only change how a character looks: "1️⃣" is "1".
  const plain = text.normalize('NFKC').toLowerCase().replace(/[\uFE00-\uFE0F\u20E3\u{E0100}-\u{E01EF}]/gu, '');
  for (const [word] of plain.matchAll(WORD)) {
    for (const [, unspaced, spaced] of word.matchAll(UNSPACED_RUN)) {
      if (unspaced !== undefined) {
        const chars = [...unspaced];
        if (chars.length === 1) tokens.push(chars[0]);
        for (let i = 0; i + 1 < chars.length; i++) tokens.push(chars[i] + chars[i + 1]);
      } else if (!STOPWORDS.has(spaced)) {
        tokens.push(foldPlural(spaced));
      }
    }
  }
  return tokens;
}

/** Harman's S-stemmer, for plain English words only: "passwords" -> "password", "replies" -> "reply". */
function foldPlural(word: string): string {
  if (word.length <= 3 || !/^[a-z]+$/.test(word)) return word;
  if (word.endsWith('ies') && !word.endsWith('eies') && !word.endsWith('aies')) return `${word.slice(0, -3)}y`;
  if (word.endsWith('es') && !word.endsWith('aes') && !word.endsWith('ees') && !word.endsWith('oes')) return word.slice(0, -1);
  if (word.endsWith('s') && !word.endsWith('us') && !word.endsWith('ss')) return word.slice(0, -1);
  return word;
}

function termCounts(tokens: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const token of tokens) counts.set(token, (counts.get(token) ?? 0) + 1);
  return counts;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

function average(values: readonly number[]): number {
  return values.length === 0 ? 0 : sum(values) / values.length;
}
