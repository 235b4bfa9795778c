import type { SynonymGroups } from '../retrieval/synonym-list.js';
import { parseCsv, serializeCsv } from './csv.js';
import { checkUnique, FaqError, type FaqRecord } from './entry.js';
import { parseJson, parseJsonLines, serializeJson, serializeJsonLines } from './json.js';
import { parseMarkdown, serializeMarkdown } from './markdown.js';
import { parseYaml, serializeYaml } from './yaml.js';

export const FAQ_FORMATS = ['csv', 'json', 'jsonl', 'yaml', 'markdown'] as const;
export type FaqFormat = (typeof FAQ_FORMATS)[number];

/** Checked on the byte length before anything is decoded or parsed. */
export const MAX_FAQ_FILE_BYTES = 50 * 1024 * 1024;

/** The extension an export is written with. */
export const FAQ_FILE_EXTENSIONS: Readonly<Record<FaqFormat, string>> = {
  csv: '.csv',
  json: '.json',
  jsonl: '.jsonl',
  yaml: '.yaml',
  markdown: '.md',
};

const FORMAT_BY_EXTENSION: Readonly<Record<string, FaqFormat>> = {
  '.csv': 'csv',
  '.json': 'json',
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.yaml': 'yaml',
  '.yml': 'yaml',
  '.md': 'markdown',
  '.markdown': 'markdown',
};

export function detectFormat(fileName: string): FaqFormat {
  const match = /\.[^./\\]+$/.exec(fileName.trim().toLowerCase());
  const format = match ? FORMAT_BY_EXTENSION[match[0]] : undefined;
  if (format === undefined) {
    const known = Object.keys(FORMAT_BY_EXTENSION).join(', ');
    throw new FaqError('FAQ_FORMAT_UNKNOWN', `cannot tell the format of "${fileName}" from its name; FAQ files end in ${known}`);
  }
  return format;
}

/** A format named in a command ("md" and "yml" too). */
export function toFaqFormat(name: string): FaqFormat {
  const lower = name.trim().toLowerCase().replace(/^\./, '');
  const format = (FAQ_FORMATS as readonly string[]).includes(lower) ? (lower as FaqFormat) : FORMAT_BY_EXTENSION[`.${lower}`];
  if (format === undefined) throw new FaqError('FAQ_FORMAT_UNKNOWN', `unknown FAQ format "${name}"; use one of ${FAQ_FORMATS.join(', ')}`);
  return format;
}

/** What an FAQ file holds: its entries, and its synonym list (synonym-list.ts) when it states one. */
export interface FaqFileContents {
  records: FaqRecord[];
  /** Absent when the file says nothing of synonyms (CSV cannot), which leaves the FAQ's list as it is. */
  synonyms?: string[][];
}

/** The formats that carry an FAQ's synonym list; CSV has no place for it. */
export const SYNONYM_FORMATS: readonly FaqFormat[] = ['json', 'jsonl', 'yaml', 'markdown'];

/**
 * The entries and synonyms of an FAQ file, checked: every entry has a question and an answer, no
 * two questions are the same after normalizeQuestion, and the synonym list is well formed. Throws
 * FaqError, naming the line, on the first problem, so that a file is taken whole or not at all.
 */
export function parseFaqDocument(bytes: Uint8Array, format: FaqFormat): FaqFileContents {
  const text = decodeFaqText(bytes);
  const contents = parseText(text, format);
  if (contents.records.length === 0) throw new FaqError('FAQ_EMPTY', `the file has no FAQ entries (${FORMAT_HINTS[format]})`);
  checkUnique(contents.records);
  return contents;
}

/** The entries, and the synonym list in every format but CSV (see SYNONYM_FORMATS). */
export function serializeFaq(entries: readonly FaqRecord[], format: FaqFormat, synonyms: SynonymGroups = []): string {
  switch (format) {
    case 'csv':
      return serializeCsv(entries);
    case 'json':
      return serializeJson(entries, synonyms);
    case 'jsonl':
      return serializeJsonLines(entries, synonyms);
    case 'yaml':
      return serializeYaml(entries, synonyms);
    case 'markdown':
      return serializeMarkdown(entries, synonyms);
  }
}

const FORMAT_HINTS: Readonly<Record<FaqFormat, string>> = {
  csv: 'CSV expects a header row with question and answer columns, then one row per entry',
  json: 'JSON expects an array of {"question": ..., "answer": ...} objects, or {"synonyms": [...], "entries": [...]}',
  jsonl: 'JSON Lines expects one {"question": ..., "answer": ...} object per line',
  yaml: 'YAML expects a list of entries with question and answer keys, or a mapping with synonyms and entries',
  markdown: 'Markdown expects a heading (#, ## or ###) per question with the answer below it',
};

function parseText(text: string, format: FaqFormat): FaqFileContents {
  switch (format) {
    case 'csv':
      return { records: parseCsv(text) };
    case 'json':
      return parseJson(text);
    case 'jsonl':
      return parseJsonLines(text);
    case 'yaml':
      return parseYaml(text);
    case 'markdown':
      return parseMarkdown(text);
  }
}

/** The file as text, or a FaqError saying why it is not an FAQ file we can read. */
function decodeFaqText(bytes: Uint8Array): string {
  if (bytes.byteLength > MAX_FAQ_FILE_BYTES) {
    throw new FaqError('FAQ_TOO_LARGE', `the file is ${megabytes(bytes.byteLength)}; FAQ files can be at most ${megabytes(MAX_FAQ_FILE_BYTES)}`);
  }
  if (bytes.byteLength === 0) throw new FaqError('FAQ_EMPTY', 'the file is empty');
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    throw new FaqError('FAQ_NOT_TEXT', 'the file is UTF-16 text; save it as UTF-8 and import it again');
  }
  const nul = bytes.indexOf(0);
  if (nul !== -1) {
    throw new FaqError('FAQ_NOT_TEXT', `the file looks binary (a NUL byte at byte ${nul}); FAQ files are UTF-8 text`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch (error) {
    const offset = firstInvalidUtf8(bytes);
    const line = lineAt(bytes, offset);
    throw new FaqError(
      'FAQ_NOT_TEXT',
      `line ${line}: the file is not UTF-8 text (byte 0x${bytes[offset].toString(16).padStart(2, '0')} at byte ${offset}); save it as UTF-8 and import it again`,
      { line, cause: error },
    );
  }
  if (text.trim() === '') throw new FaqError('FAQ_EMPTY', 'the file has only blank space');
  return text;
}

function megabytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 2)} MB`;
}

function lineAt(bytes: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  return line;
}

/** Only called once the decoder has refused the bytes, to say where. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i];
    if (lead < 0x80) {
      i++;
      continue;
    }
    // Each lead byte allows continuation bytes of one count, and a narrower range for the
    // first one (to refuse overlong forms, surrogates and code points past U+10FFFF).
    let count: number;
    let low = 0x80;
    let high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) count = 1;
    else if (lead >= 0xe0 && lead <= 0xef) {
      count = 2;
      if (lead === 0xe0) low = 0xa0;
      if (lead === 0xed) high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      count = 3;
      if (lead === 0xf0) low = 0x90;
      if (lead === 0xf4) high = 0x8f;
    } else return i;
    for (let k = 1; k <= count; k++) {
      const byte = bytes[i + k];
      if (byte === undefined) return i;
      if (k === 1 ? byte < low || byte > high : byte < 0x80 || byte > 0xbf) return i;
    }
    i += count + 1;
  }
  return bytes.length - 1;
}
