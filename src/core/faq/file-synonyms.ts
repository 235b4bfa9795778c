import { checkSynonyms } from '../retrieval/synonym-list.js';
import { describe, FaqError } from './entry.js';

/** How a file writes the list, for messages. */
export const SYNONYMS_EXAMPLE = '[["money back", "refund"], ["2fa", "two-factor"]]';

/**
 * The synonym list as an FAQ file states it (JSON, JSON Lines, YAML, Markdown): a list of groups,
 * each a list of words or phrases that mean the same. Checked here as far as the file alone
 * allows (checkSynonyms without the entries; the import checks it again against them), so a bad
 * list is refused when the file is read, naming the line: `line` where the list starts,
 * `groupLines[i]` where group i does, when the format can tell.
 */
export function readFileSynonyms(value: unknown, line: number, groupLines: readonly number[] = []): string[][] {
  const fail = (at: number, message: string, cause?: unknown): never => {
    throw new FaqError('FAQ_INVALID', `line ${at}: ${message}`, { line: at, cause });
  };
  if (!Array.isArray(value)) return fail(line, `synonyms must be a list of groups of words or phrases, such as ${SYNONYMS_EXAMPLE}; got ${describe(value)}`);
  value.forEach((group: unknown, i) => {
    const at = groupLines[i] ?? line;
    if (!Array.isArray(group)) fail(at, `synonym group ${i + 1} must be a list of words or phrases, such as ["money back", "refund"]; got ${describe(group)}`);
    const phrase = (group as unknown[]).find((item) => typeof item !== 'string');
    if (phrase !== undefined) fail(at, `synonym group ${i + 1}: each word or phrase must be text, got ${describe(phrase)}`);
  });
  try {
    return checkSynonyms(value as string[][]);
  } catch (error) {
    if (error instanceof FaqError) return fail(line, error.message, error);
    throw error;
  }
}
