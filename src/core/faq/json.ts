import type { SynonymGroups } from '../retrieval/synonym-list.js';
import { FaqError, toRecord, type FaqRecord, type RawRecord } from './entry.js';
import { readFileSynonyms, SYNONYMS_EXAMPLE } from './file-synonyms.js';
import type { FaqFileContents } from './formats.js';

/**
 * JSON: an array of entries, or, to carry the FAQ's synonym list too, an object
 * {"synonyms": [[...], ...], "entries": [...]}. JSON Lines: an entry per line, and at most one
 * line {"synonyms": [[...], ...]}. An entry is {question, answer, id?, tags?, alternates?}.
 */
const KEYS = ['id', 'question', 'answer', 'tags', 'alternates'];
const DOCUMENT_KEYS = ['synonyms', 'entries'];
const DOCUMENT_SHAPE = 'a JSON array of {"question": ..., "answer": ...} objects, or an object with "synonyms" and "entries"';

export function parseJson(text: string): FaqFileContents {
  const value = parseJsonText(text, 1);
  const start = skipSpace(text, 0);
  if (Array.isArray(value)) return { records: readEntries(text, value, start) };
  if (typeof value !== 'object' || value === null) {
    const { line } = lineAndColumn(text, start);
    throw new FaqError('FAQ_INVALID', `line ${line}: expected ${DOCUMENT_SHAPE}, found ${kind(value)}`, { line });
  }
  const members = objectMembers(text, start);
  const lineOf = (offset: number): number => lineAndColumn(text, offset).line;
  const seen = new Map<string, number>();
  for (const member of members) {
    const line = lineOf(member.keyOffset);
    if (!DOCUMENT_KEYS.includes(member.key)) {
      throw new FaqError('FAQ_INVALID', `line ${line}: expected ${DOCUMENT_SHAPE}; found the key "${member.key}"`, { line });
    }
    const first = seen.get(member.key);
    if (first !== undefined) throw new FaqError('FAQ_INVALID', `line ${line}: "${member.key}" again; it is already on line ${first}`, { line });
    seen.set(member.key, line);
  }
  const object = value as { synonyms?: unknown; entries?: unknown };
  const entries = members.find((member) => member.key === 'entries');
  if (entries === undefined || !Array.isArray(object.entries)) {
    const line = lineOf(entries?.valueOffset ?? start);
    throw new FaqError('FAQ_INVALID', `line ${line}: "entries" must be the list of {"question": ..., "answer": ...} objects`, { line });
  }
  const synonyms = members.find((member) => member.key === 'synonyms');
  const contents: FaqFileContents = { records: [] };
  if (synonyms !== undefined) {
    const groupLines = text[synonyms.valueOffset] === '[' ? linesAt(text, arrayElementStarts(text, synonyms.valueOffset)) : [];
    contents.synonyms = readFileSynonyms(object.synonyms, lineOf(synonyms.valueOffset), groupLines);
  }
  contents.records = readEntries(text, object.entries, entries.valueOffset);
  return contents;
}

export function parseJsonLines(text: string): FaqFileContents {
  const contents: FaqFileContents = { records: [] };
  let synonymsLine: number | undefined;
  text.split(/\r?\n/).forEach((lineText, index) => {
    if (lineText.trim() === '') return;
    const line = index + 1;
    const value = parseJsonText(lineText, line);
    if (typeof value === 'object' && value !== null && 'synonyms' in value) {
      const other = Object.keys(value).find((key) => key !== 'synonyms');
      if (other !== undefined) {
        throw new FaqError('FAQ_INVALID', `line ${line}: a synonyms line holds only {"synonyms": ${SYNONYMS_EXAMPLE}}; found "${other}" beside it`, { line });
      }
      if (synonymsLine !== undefined) throw new FaqError('FAQ_INVALID', `line ${line}: a second synonyms line; the first is line ${synonymsLine}`, { line });
      synonymsLine = line;
      contents.synonyms = readFileSynonyms(value.synonyms, line);
      return;
    }
    contents.records.push(toRecord(toRawRecord(value, line), line));
  });
  return contents;
}

export function serializeJson(entries: readonly FaqRecord[], synonyms: SynonymGroups = []): string {
  const list = JSON.stringify(entries.map(plainEntry), null, 2);
  if (synonyms.length === 0) return `${list}\n`;
  // A group per line, so that the list reads as the admins wrote it.
  const groups = synonyms.map((group) => `    ${JSON.stringify(group)}`).join(',\n');
  return `{\n  "synonyms": [\n${groups}\n  ],\n  "entries": ${list.replace(/\n/g, '\n  ')}\n}\n`;
}

export function serializeJsonLines(entries: readonly FaqRecord[], synonyms: SynonymGroups = []): string {
  const lines = entries.map((entry) => `${JSON.stringify(plainEntry(entry))}\n`);
  if (synonyms.length > 0) lines.unshift(`${JSON.stringify({ synonyms })}\n`);
  return lines.join('');
}

/** The entries of the array at `offset`, each error naming its element's line. */
function readEntries(text: string, items: readonly unknown[], offset: number): FaqRecord[] {
  const lines = linesAt(text, arrayElementStarts(text, offset));
  return items.map((item, i) => toRecord(toRawRecord(item, lines[i]), lines[i]));
}

/** Only the fields a file carries, in a stable order. */
function plainEntry(entry: FaqRecord): RawRecord {
  const plain: RawRecord = {};
  if (entry.id !== undefined) plain.id = entry.id;
  plain.question = entry.question;
  plain.answer = entry.answer;
  if (entry.tags !== undefined) plain.tags = entry.tags;
  if (entry.alternates?.length) plain.alternates = entry.alternates;
  return plain;
}

function toRawRecord(value: unknown, line: number): RawRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FaqError('FAQ_INVALID', `line ${line}: expected an object with "question" and "answer", found ${kind(value)}`, { line });
  }
  const object = value as Record<string, unknown>;
  const unknown = Object.keys(object).filter((key) => !KEYS.includes(key));
  if (unknown.length > 0) {
    throw new FaqError('FAQ_INVALID', `line ${line}: unknown key "${unknown[0]}"; an entry has ${KEYS.join(', ')}`, { line });
  }
  return { id: object.id, question: object.question, answer: object.answer, tags: object.tags, alternates: object.alternates };
}

/** JSON.parse, with its syntax errors turned into FaqErrors that name the line and column. */
function parseJsonText(text: string, firstLine: number): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    // V8 says "at position N" (Node 20) and adds "(line L column C)" in later versions.
    const lineColumn = /line (\d+) column (\d+)/.exec(message);
    const position = /at position (\d+)/.exec(message);
    let where: { line: number; column: number };
    if (lineColumn) where = { line: Number(lineColumn[1]), column: Number(lineColumn[2]) };
    else if (position) where = lineAndColumn(text, Number(position[1]));
    else where = lineAndColumn(text, text.length);
    const line = firstLine + where.line - 1;
    const reason = message.replace(/\s*\(line \d+ column \d+\)/, '').replace(/ in JSON at position \d+/, '');
    throw new FaqError('FAQ_INVALID', `line ${line}, column ${where.column}: ${reason}`, { line, column: where.column, cause: error });
  }
}

/*
 * Where things are in a text that JSON.parse has accepted, for messages that name lines: a small
 * scanner that skips whole values, so that it needs no checks of its own.
 */

/** Offsets where each element of the array that opens at `start` begins. */
function arrayElementStarts(text: string, start: number): number[] {
  const starts: number[] = [];
  let i = skipSpace(text, start + 1);
  while (text[i] !== ']') {
    starts.push(i);
    i = skipSpace(text, skipValue(text, i));
    if (text[i] === ',') i = skipSpace(text, i + 1);
  }
  return starts;
}

/** The keys of the object that opens at `start`, with where each key and its value begin. */
function objectMembers(text: string, start: number): { key: string; keyOffset: number; valueOffset: number }[] {
  const members: { key: string; keyOffset: number; valueOffset: number }[] = [];
  let i = skipSpace(text, start + 1);
  while (text[i] !== '}') {
    const keyEnd = skipValue(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    const valueOffset = skipSpace(text, skipSpace(text, keyEnd) + 1);
    members.push({ key, keyOffset: i, valueOffset });
    i = skipSpace(text, skipValue(text, valueOffset));
    if (text[i] === ',') i = skipSpace(text, i + 1);
  }
  return members;
}

/** The offset just past the value that starts at `start`. */
function skipValue(text: string, start: number): number {
  let depth = 0;
  let i = start;
  do {
    const char = text[i];
    if (char === '"') {
      i++;
      while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else if (char === '[' || char === '{') {
      depth++;
      i++;
    } else if (char === ']' || char === '}') {
      depth--;
      i++;
    } else if (depth === 0) {
      // A number, true, false or null on its own.
      while (i < text.length && !/[\s,\]}]/.test(text[i])) i++;
    } else i++;
  } while (depth > 0);
  return i;
}

function skipSpace(text: string, start: number): number {
  let i = start;
  while (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r') i++;
  return i;
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

/** The line of each offset, in one pass; the offsets ascend. */
function linesAt(text: string, offsets: readonly number[]): number[] {
  const lines: number[] = [];
  let line = 1;
  let scanned = 0;
  for (const offset of offsets) {
    for (let i = text.indexOf('\n', scanned); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++;
    scanned = offset;
    lines.push(line);
  }
  return lines;
}

function kind(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
