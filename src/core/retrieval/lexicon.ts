import { CHAT_ABBREVIATIONS } from './abbreviations.js';
import { type SynonymGroups, type SynonymPhrase, synonymPhrases } from './synonym-list.js';
import { stem, terms, type Word, words } from './terms.js';
import type { WordNet } from './wordnet.js';

/**
 * What retrieval knows about words beyond the FAQ's own: chat shorthand, the FAQ's synonym list,
 * WordNet's synonyms, and typo correction against the FAQ's vocabulary. It turns a question into
 * query groups: one group per meaning, holding the terms that can stand for it with a weight
 * (1 for the word itself), of which an entry's best match counts.
 */
export interface QueryTerm {
  readonly term: string;
  readonly weight: number;
}
export type QueryGroup = readonly QueryTerm[];

/** How much a stand-in counts against the word itself: chosen, not fitted (a synonym is less sure than a typo). */
export const EXPANSION_WEIGHTS = {
  abbreviation: 1,
  synonymList: 0.9,
  typo: 0.8,
  wordnet: 0.5,
} as const;

/** The FAQ side: which terms the entries use, and their words as written. */
export interface Vocabulary {
  has(term: string): boolean;
  /** Surface word -> term, for typo correction. */
  readonly surfaces: ReadonlyMap<string, string>;
}

export interface LexiconOptions {
  readonly abbreviations?: Readonly<Record<string, string>>;
  /** The FAQ's synonym list, checked (synonym-list.ts). */
  readonly synonyms?: SynonymGroups;
  /** null: no WordNet (tests that count exact BM25 figures). */
  readonly wordnet: WordNet | null;
}

export class Lexicon {
  private readonly abbreviations: Readonly<Record<string, string>>;
  private readonly phrases: readonly SynonymPhrase[][];
  private readonly wordnet: WordNet | null;

  constructor(options: LexiconOptions) {
    this.abbreviations = options.abbreviations ?? CHAT_ABBREVIATIONS;
    this.phrases = synonymPhrases(options.synonyms ?? []);
    this.wordnet = options.wordnet;
  }

  /**
   * Reverse WordNet links for an FAQ's words: term of a synonym -> the FAQ terms it stands for,
   * so that a question's "repay" finds an entry's "refund" even where "repay"'s own first senses
   * do not name it.
   */
  reverseSynonyms(surfaces: Iterable<string>): Map<string, Set<string>> {
    const reverse = new Map<string, Set<string>>();
    if (!this.wordnet) return reverse;
    for (const surface of surfaces) {
      const own = stem(surface);
      for (const synonym of this.wordnetSynonyms(surface)) {
        const key = stem(synonym);
        if (key === own) continue;
        let set = reverse.get(key);
        if (!set) reverse.set(key, (set = new Set()));
        set.add(own);
      }
    }
    return reverse;
  }

  /** The query groups of `text` against an FAQ's vocabulary. */
  expand(text: string, vocabulary: Vocabulary, reverse: ReadonlyMap<string, ReadonlySet<string>>): QueryGroup[] {
    const found = words(text);
    const groups = new Map<string, QueryTerm[]>();
    const addGroup = (key: string, alternatives: QueryTerm[]) => {
      if (!groups.has(key)) groups.set(key, alternatives);
    };
    for (const word of found) {
      if (groups.has(word.term)) continue;
      const alternatives: QueryTerm[] = [{ term: word.term, weight: 1 }];
      const add = (term: string, weight: number) => {
        const existing = alternatives.find((alternative) => alternative.term === term);
        if (!existing) alternatives.push({ term, weight });
        else if (existing.weight < weight) alternatives[alternatives.indexOf(existing)] = { term, weight };
      };
      const expansion = this.abbreviations[word.surface];
      if (expansion !== undefined) {
        for (const term of terms(expansion)) addGroup(term, [{ term, weight: EXPANSION_WEIGHTS.abbreviation }]);
      } else if (!vocabulary.has(word.term)) {
        for (const term of typoCorrections(word, vocabulary)) add(term, EXPANSION_WEIGHTS.typo);
      }
      for (const synonym of this.wordnetSynonyms(word.surface)) {
        const term = stem(synonym);
        if (vocabulary.has(term)) add(term, EXPANSION_WEIGHTS.wordnet);
      }
      for (const term of reverse.get(word.term) ?? []) add(term, EXPANSION_WEIGHTS.wordnet);
      groups.set(word.term, alternatives);
    }
    const queryTerms = found.map((word) => word.term);
    for (const group of this.phrases) {
      if (!group.some((phrase) => containsRun(queryTerms, phrase.terms))) continue;
      for (const phrase of group) for (const term of phrase.terms) addGroup(term, [{ term, weight: EXPANSION_WEIGHTS.synonymList }]);
    }
    return [...groups.values()];
  }

  /** Single-word WordNet synonyms of a word, looked up by its dictionary form. */
  private wordnetSynonyms(surface: string): string[] {
    if (!this.wordnet || !/^[a-z]{3,}$/u.test(surface)) return [];
    for (const lemma of dictionaryForms(surface)) {
      const synonyms = this.wordnet.synonyms(lemma);
      if (synonyms.length > 0) return synonyms.filter((synonym) => /^[a-z]+$/u.test(synonym));
    }
    return [];
  }
}

/**
 * Candidate dictionary forms of an inflected English word, as WordNet's morphy tries them:
 * the word, then its detachments ("paying" -> "pay", "refunded" -> "refund", "charges" -> "charge").
 */
function dictionaryForms(word: string): string[] {
  const forms = [word];
  const rules: [suffix: string, replacement: string][] = [
    ['ies', 'y'], ['es', 'e'], ['es', ''], ['s', ''], ['ing', ''], ['ing', 'e'], ['ed', ''], ['ed', 'e'], ['er', ''], ['est', ''],
  ];
  for (const [suffix, replacement] of rules) {
    if (word.length > suffix.length + 2 && word.endsWith(suffix)) forms.push(word.slice(0, -suffix.length) + replacement);
  }
  return forms;
}

/** Vocabulary terms whose surface is within one edit (two for long words) of an unknown word, nearest first. */
function typoCorrections(word: Word, vocabulary: Vocabulary): string[] {
  if (word.surface.length < 4 || !/^\p{L}+$/u.test(word.surface)) return [];
  const limit = word.surface.length >= 8 ? 2 : 1;
  let best = limit + 1;
  let nearest: string[] = [];
  for (const [surface, term] of vocabulary.surfaces) {
    if (Math.abs(surface.length - word.surface.length) > limit) continue;
    // Bounded one above the best so far: a distance at or under it is exact.
    const distance = editDistance(word.surface, surface, best + 1);
    if (distance > limit) continue;
    if (distance < best) {
      best = distance;
      nearest = [term];
    } else if (distance === best && !nearest.includes(term)) nearest.push(term);
  }
  return nearest;
}

/**
 * Optimal string alignment distance (Levenshtein plus swaps of neighbours, "recieve"), or a
 * number >= `bound` as soon as the distance is known to reach it.
 */
export function editDistance(a: string, b: string, bound = Number.POSITIVE_INFINITY): number {
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = new Array<number>(b.length + 1);
    current[0] = i;
    let rowMin = current[0];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) current[j] = Math.min(current[j], before[j - 2] + 1);
      rowMin = Math.min(rowMin, current[j]);
    }
    if (rowMin >= bound) return bound;
    before = previous;
    previous = current;
  }
  return previous[b.length];
}

function containsRun(haystack: readonly string[], needle: readonly string[]): boolean {
  if (needle.length === 0) return false;
  for (let i = 0; i + needle.length <= haystack.length; i++) {
    if (needle.every((term, j) => haystack[i + j] === term)) return true;
  }
  return false;
}
