import { CodedError } from '../../coded-error.js';

/** Every failure the FAQ layer reports carries a stable code, so commands can branch on it. */
export type FaqErrorCode =
  /** The file or the entry is malformed; the message names the line. */
  | 'FAQ_INVALID'
  /** The file has no content, or no entries. */
  | 'FAQ_EMPTY'
  /** The file is over MAX_FAQ_FILE_BYTES. */
  | 'FAQ_TOO_LARGE'
  /** The file is binary or not UTF-8. */
  | 'FAQ_NOT_TEXT'
  /** The file type or format name is not one we read. */
  | 'FAQ_FORMAT_UNKNOWN'
  /** Two questions are the same after normalizeQuestion, or two entries share an id. */
  | 'FAQ_DUPLICATE'
  /** No entry, or no page, answers to what was asked for. */
  | 'FAQ_NOT_FOUND'
  /** A clear confirmation token that is wrong or expired. */
  | 'FAQ_CONFIRMATION'
  /** The FAQ changed between a preview (or a read) and the write that relied on it. */
  | 'FAQ_CONFLICT'
  /** What the storage holds under the FAQ's key is not an FAQ document. */
  | 'FAQ_CORRUPT';

export class FaqError extends CodedError<FaqErrorCode> {
  /** 1-based, where the problem is in a file. */
  readonly line?: number;
  readonly column?: number;

  constructor(code: FaqErrorCode, message: string, options?: { line?: number; column?: number; cause?: unknown }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.line !== undefined) this.line = options.line;
    if (options?.column !== undefined) this.column = options.column;
  }
}

/** One question and its answer, as the FAQ of a scope keeps it. */
export interface FaqEntry {
  id: string;
  /** Trimmed, whitespace collapsed to single spaces: a question is one line. */
  question: string;
  /** Trimmed, with \n line ends. */
  answer: string;
  tags: string[];
  /** Other ways members ask the question (linked from the inbox, or written by admins): retrieval and fine-tuning use them. */
  alternates: string[];
  /** ISO 8601, when the entry was added or last changed. */
  updatedAt: string;
}

/**
 * An entry as a file or a command gives it, before the FAQ gives it an id and a time. An absent
 * id or tags means "not said", which an import keeps apart from "none".
 */
export interface FaqRecord {
  id?: string;
  question: string;
  answer: string;
  tags?: string[];
  alternates?: string[];
  /** Where the entry starts in its file, for messages. */
  line?: number;
}

/** The fields of one record as a format read them, before they are checked. */
export interface RawRecord {
  id?: unknown;
  question?: unknown;
  answer?: unknown;
  tags?: unknown;
  alternates?: unknown;
}

/** Ids stay typeable in a chat command: letters, digits and `_ . : -`. */
const ID_PATTERN = /^[\p{L}\p{N}_.:-]{1,64}$/u;
const TRAILING_PUNCTUATION = /[\s?!.,;:。、،؟]+$/u;

/**
 * The form two questions are compared in: NFKC, case-folded, whitespace collapsed, trailing
 * punctuation gone, so "How do I reset my password?" and "how do i  reset my PASSWORD" are one.
 */
export function normalizeQuestion(question: string): string {
  // Upper then lower folds the cases a single toLowerCase misses (ß -> ss, final sigma).
  const folded = question.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC');
  return folded.replace(/\s+/gu, ' ').replace(TRAILING_PUNCTUATION, '').trim();
}

function cleanQuestion(question: string): string {
  return question.replace(/\s+/gu, ' ').trim();
}

function cleanAnswer(answer: string): string {
  return answer.replace(/\r\n?/g, '\n').trim();
}

/** Checks one record's fields and puts them in their stored form; errors name the line. */
export function toRecord(raw: RawRecord, line?: number): FaqRecord {
  const where = line === undefined ? '' : `line ${line}: `;
  const fail = (message: string): never => {
    throw new FaqError('FAQ_INVALID', `${where}${message}`, { line });
  };
  if (raw.question === undefined || raw.question === null) fail('the entry has no question');
  if (typeof raw.question !== 'string') fail(`the question must be text, got ${describe(raw.question)}`);
  if (raw.answer === undefined || raw.answer === null) fail(`"${cleanQuestion(raw.question as string)}" has no answer`);
  if (typeof raw.answer !== 'string') fail(`the answer must be text, got ${describe(raw.answer)}`);
  const question = cleanQuestion(raw.question as string);
  const answer = cleanAnswer(raw.answer as string);
  if (question === '') fail('the question is empty');
  if (normalizeQuestion(question) === '') fail(`the question "${question}" has no words`);
  if (answer === '') fail(`the answer to "${question}" is empty`);
  const record: FaqRecord = { question, answer };
  if (raw.id !== undefined && raw.id !== null && raw.id !== '') {
    const id = typeof raw.id === 'number' && Number.isInteger(raw.id) ? String(raw.id) : raw.id;
    if (typeof id !== 'string') fail(`the id must be text, got ${describe(raw.id)}`);
    record.id = checkId(id as string, where);
  }
  if (raw.tags !== undefined && raw.tags !== null) record.tags = cleanTags(raw.tags, where);
  if (raw.alternates !== undefined && raw.alternates !== null) record.alternates = cleanAlternates(raw.alternates, question, where);
  if (line !== undefined) record.line = line;
  return record;
}

function checkId(id: string, where = ''): string {
  const trimmed = id.trim();
  if (!ID_PATTERN.test(trimmed)) {
    throw new FaqError('FAQ_INVALID', `${where}the id "${id}" must be 1 to 64 letters, digits, or _ . : -`);
  }
  return trimmed;
}

/** Tags as a list, or as one string split on ';' (the CSV form); trimmed, blanks and repeats dropped. */
function cleanTags(tags: unknown, where = ''): string[] {
  const list = typeof tags === 'string' ? tags.split(';') : tags;
  if (!Array.isArray(list) || list.some((tag) => typeof tag !== 'string')) {
    throw new FaqError('FAQ_INVALID', `${where}tags must be a list of text, or text separated by ';', got ${describe(tags)}`);
  }
  const cleaned: string[] = [];
  for (const tag of list as string[]) {
    const trimmed = tag.replace(/\s+/gu, ' ').trim();
    if (trimmed.includes(';')) throw new FaqError('FAQ_INVALID', `${where}the tag "${trimmed}" contains ';', which separates tags`);
    if (trimmed !== '' && !cleaned.includes(trimmed)) cleaned.push(trimmed);
  }
  return cleaned;
}

/**
 * Alternate phrasings as a list, or as one string with a phrasing per line (the CSV form); each
 * cleaned like a question; blanks, repeats and the question itself dropped.
 */
function cleanAlternates(alternates: unknown, question: string, where = ''): string[] {
  const list = typeof alternates === 'string' ? alternates.split(/\r?\n/u) : alternates;
  if (!Array.isArray(list) || list.some((alternate) => typeof alternate !== 'string')) {
    throw new FaqError('FAQ_INVALID', `${where}alternates must be a list of text, or text with one phrasing per line, got ${describe(alternates)}`);
  }
  const seen = new Set([normalizeQuestion(question)]);
  const cleaned: string[] = [];
  for (const alternate of list as string[]) {
    const phrasing = cleanQuestion(alternate);
    const key = normalizeQuestion(phrasing);
    if (key === '' || seen.has(key)) continue;
    seen.add(key);
    cleaned.push(phrasing);
  }
  return cleaned;
}

/** Every phrasing of an entry: its question, then its alternates. */
export function phrasings(entry: Pick<FaqRecord, 'question' | 'alternates'>): string[] {
  return [entry.question, ...(entry.alternates ?? [])];
}

/**
 * Throws FAQ_DUPLICATE naming both entries when two records share a normalized phrasing (a
 * question or an alternate: one phrasing cannot lead to two answers) or an id.
 */
export function checkUnique(records: readonly FaqRecord[]): void {
  const byPhrasing = new Map<string, { record: FaqRecord; phrasing: string }>();
  const byId = new Map<string, FaqRecord>();
  for (const record of records) {
    for (const phrasing of phrasings(record)) {
      const first = byPhrasing.get(normalizeQuestion(phrasing));
      if (first) {
        const what = phrasing === record.question ? `"${record.question}"` : `the alternate "${phrasing}" of "${record.question}"`;
        const repeated = first.phrasing === first.record.question ? `the question "${first.record.question}"` : `the alternate "${first.phrasing}" of "${first.record.question}"`;
        throw new FaqError(
          'FAQ_DUPLICATE',
          `${place(record)}${what} repeats ${repeated}${first.record.line === undefined ? '' : ` of line ${first.record.line}`}`,
          { line: record.line },
        );
      }
      byPhrasing.set(normalizeQuestion(phrasing), { record, phrasing });
    }
    if (record.id === undefined) continue;
    const sameId = byId.get(record.id);
    if (sameId) {
      throw new FaqError(
        'FAQ_DUPLICATE',
        `${place(record)}the id "${record.id}" is already used by "${sameId.question}"${sameId.line === undefined ? '' : ` on line ${sameId.line}`}`,
        { line: record.line },
      );
    }
    byId.set(record.id, record);
  }
}

function place(record: FaqRecord): string {
  return record.line === undefined ? '' : `line ${record.line}: `;
}

/** What a value is, for messages: "a list", "an object", "number 42". */
export function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
