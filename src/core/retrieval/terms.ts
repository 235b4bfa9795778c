import { stemmer } from 'stemmer';

/**
 * The words of a text as retrieval compares them: NFKC, lower case, runs of letters, digits and
 * marks (so any script), English stopwords dropped and English words stemmed (Porter: "cancelling",
 * "cancelled" and "cancels" are all "cancel"); Chinese and Japanese as character bigrams. Emoji
 * and punctuation make no words.
 */
export interface Word {
  /** As written, lower-cased: what abbreviations, synonyms and typo correction look up. */
  readonly surface: string;
  /** What the index stores and matches: the stem, or a bigram. */
  readonly term: string;
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

export function words(text: string): Word[] {
  const found: Word[] = [];
  // Variation selectors and the keycap mark only change how a character looks: "1️⃣" is "1".
  const plain = text.normalize('NFKC').toLowerCase().replace(/[\uFE00-\uFE0F\u20E3\u{E0100}-\u{E01EF}]/gu, '');
  for (const [word] of plain.matchAll(WORD)) {
    for (const [, unspaced, spaced] of word.matchAll(UNSPACED_RUN)) {
      if (unspaced !== undefined) {
        const chars = [...unspaced];
        if (chars.length === 1) found.push({ surface: chars[0], term: chars[0] });
        for (let i = 0; i + 1 < chars.length; i++) found.push({ surface: chars[i] + chars[i + 1], term: chars[i] + chars[i + 1] });
      } else if (!STOPWORDS.has(spaced)) {
        found.push({ surface: spaced, term: stem(spaced) });
      }
    }
  }
  return found;
}

/** The index terms of a text, in order (repeats kept). */
export function terms(text: string): string[] {
  return words(text).map((word) => word.term);
}

export function isStopword(word: string): boolean {
  return STOPWORDS.has(word);
}

/** Porter's stemmer, for plain English words only; other scripts and words with digits stay as they are. */
export function stem(word: string): string {
  return word.length > 2 && /^[a-z]+$/u.test(word) ? stemmer(word) : word;
}
