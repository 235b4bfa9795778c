import { FaqError, type FaqRecord, phrasings } from '../faq/entry.js';
import { terms } from './terms.js';

/**
 * An FAQ's own synonyms, written by its admins: groups of words or phrases that mean the same
 * there ("money back", "refund", "reimbursement"). Groups that share a phrase are one group. A
 * list that would make most questions match each other is refused: that would turn every
 * answer into a guess.
 */
export type SynonymGroups = readonly (readonly string[])[];

/** Phrases in one group, after groups sharing a phrase are joined. */
export const MAX_GROUP_SIZE = 12;
/** A group whose words appear in more than this share of the entries matches nearly every question. */
export const MAX_ENTRY_SHARE = 0.5;

export interface SynonymPhrase {
  readonly text: string;
  /** The phrase's index terms, in order (terms.ts). */
  readonly terms: readonly string[];
}

/**
 * Checks the groups and returns them joined and cleaned: each phrase trimmed, with at least one
 * word that is not a stopword, every group at least two phrases. Throws FAQ_INVALID saying
 * which group is wrong and why. `entries`, the FAQ's, let the check refuse groups
 * that would match most of the FAQ.
 */
export function checkSynonyms(groups: SynonymGroups, entries: readonly Pick<FaqRecord, 'question' | 'alternates' | 'answer'>[] = []): string[][] {
  const entryTerms = entries.map((entry) => new Set(terms([...phrasings(entry), entry.answer].join('\n'))));
  const joined = joinGroups(groups.map((group, i) => group.map((phrase) => cleanPhrase(phrase, i))));
  for (const group of joined) {
    if (group.length < 2) throw new FaqError('FAQ_INVALID', `the synonym group "${group[0]}" has one phrase; a group needs two or more`);
    if (group.length > MAX_GROUP_SIZE) {
      throw new FaqError(
        'FAQ_INVALID',
        `the synonym groups joined by shared phrases make one group of ${group.length} phrases (${group.slice(0, 6).join(', ')}, ...); ` +
          `at most ${MAX_GROUP_SIZE} may mean the same, or nearly every question matches every other`,
      );
    }
    if (entryTerms.length >= 4) {
      const phrases = group.map((text) => terms(text));
      const matched = entryTerms.filter((entry) => phrases.some((phrase) => phrase.every((term) => entry.has(term)))).length;
      if (matched / entryTerms.length > MAX_ENTRY_SHARE) {
        throw new FaqError(
          'FAQ_INVALID',
          `the synonym group "${group.join(', ')}" matches ${matched} of the FAQ's ${entryTerms.length} entries; ` +
            `words that common cannot tell entries apart, so they would map every question to every answer`,
        );
      }
    }
  }
  return joined;
}

export function synonymPhrases(groups: SynonymGroups): SynonymPhrase[][] {
  return groups.map((group) => group.map((text) => ({ text, terms: terms(text) })));
}

function cleanPhrase(phrase: unknown, group: number): string {
  if (typeof phrase !== 'string') throw new FaqError('FAQ_INVALID', `synonym group ${group + 1}: phrases must be text, got ${typeof phrase}`);
  const text = phrase.replace(/\s+/gu, ' ').trim().toLowerCase();
  if (terms(text).length === 0) {
    throw new FaqError('FAQ_INVALID', `synonym group ${group + 1}: "${phrase}" has no word that is not a stopword, so it would match anything`);
  }
  return text;
}

/** Union of groups that share a phrase (by its terms), first-seen order kept. */
function joinGroups(groups: readonly (readonly string[])[]): string[][] {
  const joined: { keys: Set<string>; phrases: string[] }[] = [];
  for (const group of groups) {
    const keys = new Set(group.map((phrase) => terms(phrase).join(' ')));
    const overlapping = joined.filter((existing) => [...keys].some((key) => existing.keys.has(key)));
    const target = overlapping[0] ?? { keys: new Set<string>(), phrases: [] };
    if (overlapping.length === 0) joined.push(target);
    for (const other of overlapping.slice(1)) {
      for (const key of other.keys) target.keys.add(key);
      target.phrases.push(...other.phrases);
      joined.splice(joined.indexOf(other), 1);
    }
    for (const phrase of group) {
      const key = terms(phrase).join(' ');
      if (!target.phrases.some((existing) => terms(existing).join(' ') === key)) target.phrases.push(phrase);
      target.keys.add(key);
    }
  }
  return joined.map((group) => group.phrases);
}
