import { FaqError, toRecord, type FaqRecord, type RawRecord } from './entry.js';

/** JSON (an array of entries) and JSON Lines (an entry per line): {question, answer, id?, tags?, alternates?}. */
const KEYS = ['id', 'question', 'answer', 'tags', 'alternates'];

export function parseJson(text: string): FaqRecord[] {
  const value = parseJsonText(text, 1);
  if (!Array.isArray(value)) {
    const { line } = lineAndColumn(text, firstNonBlank(text));
    throw new FaqError('FAQ_INVALID', `line ${line}: expected a JSON array of {"question": ..., "answer": ...} objects, found ${kind(value)}`, { line });
  }
  const lines = linesAt(text, arrayElementStarts(text));
  return value.map((item, i) => toRecord(toRawRecord(item, lines[i]), lines[i]));
}

export function parseJsonLines(text: string): FaqRecord[] {
  const records: FaqRecord[] = [];
  text.split(/\r?\n/).forEach((lineText, index) => {
    if (lineText.trim() === '') return;
    const line = index + 1;
    const value = parseJsonText(lineText, line);
    records.push(toRecord(toRawRecord(value, line), line));
  });
  return records;
}

export function serializeJson(entries: readonly FaqRecord[]): string {
  return `${JSON.stringify(entries.map(plainEntry), null, 2)}\n`;
}

export function serializeJsonLines(entries: readonly FaqRecord[]): string {
  return entries.map((entry) => `${JSON.stringify(plainEntry(entry))}\n`).join('');
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

/** Offsets where each element of the top-level array begins; the text is known to be valid JSON. */
function arrayElementStarts(text: string): number[] {
  const starts: number[] = [];
  let depth = 0;
  let expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === ' ' || char === '\t' || char === '\n' || char === '\r') continue;
    if (depth === 1 && expectElement && char !== ']') starts.push(i);
    expectElement = false;
    if (char === '"') {
      i++;
      while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    } else if (char === '[' || char === '{') {
      depth++;
      if (depth === 1) expectElement = true;
    } else if (char === ']' || char === '}') depth--;
    else if (char === ',' && depth === 1) expectElement = true;
  }
  return starts;
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

function firstNonBlank(text: string): number {
  const match = /\S/.exec(text);
  return match ? match.index : 0;
}

function kind(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
