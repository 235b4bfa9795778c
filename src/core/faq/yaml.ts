import { isMap, isSeq, LineCounter, parseDocument, stringify } from 'yaml';
import { FaqError, toRecord, type FaqRecord, type RawRecord } from './entry.js';

/** YAML: a list of entries with question, answer and optional id, tags and alternates keys. */
const KEYS = ['id', 'question', 'answer', 'tags', 'alternates'];

export function parseYaml(text: string): FaqRecord[] {
  const lineCounter = new LineCounter();
  // The failsafe schema reads every scalar as text, so `answer: 1.10` stays "1.10" and `answer: no` stays "no".
  const document = parseDocument(text, { schema: 'failsafe', lineCounter, uniqueKeys: true });
  const error = document.errors[0];
  if (error) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    const reason = error.message.split(/ at line \d+, column \d+/)[0];
    throw new FaqError('FAQ_INVALID', `line ${line}, column ${col}: ${reason}`, { line, column: col, cause: error });
  }
  const contents = document.contents;
  if (!isSeq(contents)) {
    const line = contents?.range ? lineCounter.linePos(contents.range[0]).line : 1;
    throw new FaqError('FAQ_INVALID', `line ${line}: expected a list of entries ("- question: ...", "  answer: ..."), one per question`, { line });
  }
  return contents.items.map((item) => {
    const line = item !== null && typeof item === 'object' && 'range' in item && item.range ? lineCounter.linePos(item.range[0]).line : 1;
    if (!isMap(item)) {
      throw new FaqError('FAQ_INVALID', `line ${line}: expected an entry with "question" and "answer" keys`, { line });
    }
    const value = item.toJSON() as Record<string, unknown>;
    const unknown = Object.keys(value).filter((key) => !KEYS.includes(key));
    if (unknown.length > 0) {
      throw new FaqError('FAQ_INVALID', `line ${line}: unknown key "${unknown[0]}"; an entry has ${KEYS.join(', ')}`, { line });
    }
    return toRecord({ id: value.id, question: value.question, answer: value.answer, tags: value.tags, alternates: value.alternates }, line);
  });
}

export function serializeYaml(entries: readonly FaqRecord[]): string {
  const plain = entries.map((entry) => {
    const fields: RawRecord = {};
    if (entry.id !== undefined) fields.id = entry.id;
    fields.question = entry.question;
    fields.answer = entry.answer;
    if (entry.tags !== undefined) fields.tags = entry.tags;
    if (entry.alternates?.length) fields.alternates = entry.alternates;
    return fields;
  });
  // No line folding: an exported answer reads as it was written.
  return stringify(plain, { lineWidth: 0 });
}
