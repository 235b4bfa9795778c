import { Document, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type YAMLSeq } from 'yaml';
import type { SynonymGroups } from '../retrieval/synonym-list.js';
import { FaqError, toRecord, type FaqRecord, type RawRecord } from './entry.js';
import { readFileSynonyms } from './file-synonyms.js';
import type { FaqFileContents } from './formats.js';

/**
 * YAML: a list of entries with question, answer and optional id, tags and alternates keys; or,
 * to carry the FAQ's synonym list too, a mapping with `synonyms` (a list of groups) and `entries`.
 */
const KEYS = ['id', 'question', 'answer', 'tags', 'alternates'];
const DOCUMENT_KEYS = ['synonyms', 'entries'];

export function parseYaml(text: string): FaqFileContents {
  const lineCounter = new LineCounter();
  // The failsafe schema reads every scalar as text, so `answer: 1.10` stays "1.10" and `answer: no` stays "no".
  const document = parseDocument(text, { schema: 'failsafe', lineCounter, uniqueKeys: true });
  const error = document.errors[0];
  if (error) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    const reason = error.message.split(/ at line \d+, column \d+/)[0];
    throw new FaqError('FAQ_INVALID', `line ${line}, column ${col}: ${reason}`, { line, column: col, cause: error });
  }
  const lineOf = (node: unknown): number => (isNode(node) && node.range ? lineCounter.linePos(node.range[0]).line : 1);
  const contents = document.contents;
  if (isSeq(contents)) return { records: readEntries(contents, lineOf) };
  const expected = 'expected a list of entries ("- question: ...", "  answer: ..."), one per question, or a mapping with "synonyms" and "entries"';
  if (!isMap(contents)) {
    const line = lineOf(contents);
    throw new FaqError('FAQ_INVALID', `line ${line}: ${expected}`, { line });
  }
  for (const { key } of contents.items) {
    const name = isScalar(key) ? String(key.value) : '';
    if (!DOCUMENT_KEYS.includes(name)) {
      const line = lineOf(key);
      throw new FaqError('FAQ_INVALID', `line ${line}: ${expected}; found the key "${name}"`, { line });
    }
  }
  const entries = contents.get('entries', true);
  if (!isSeq(entries)) {
    const line = lineOf(entries ?? contents);
    throw new FaqError('FAQ_INVALID', `line ${line}: "entries" must be the list of entries ("- question: ...", "  answer: ...")`, { line });
  }
  const result: FaqFileContents = { records: [] };
  const synonyms = contents.get('synonyms', true);
  if (synonyms !== undefined) {
    result.synonyms = readFileSynonyms(synonyms.toJSON(), lineOf(synonyms), isSeq(synonyms) ? synonyms.items.map(lineOf) : []);
  }
  result.records = readEntries(entries, lineOf);
  return result;
}

function readEntries(list: YAMLSeq, lineOf: (node: unknown) => number): FaqRecord[] {
  return list.items.map((item) => {
    const line = lineOf(item);
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

export function serializeYaml(entries: readonly FaqRecord[], synonyms: SynonymGroups = []): string {
  const plain = entries.map((entry) => {
    const fields: RawRecord = {};
    if (entry.id !== undefined) fields.id = entry.id;
    fields.question = entry.question;
    fields.answer = entry.answer;
    if (entry.tags !== undefined) fields.tags = entry.tags;
    if (entry.alternates?.length) fields.alternates = entry.alternates;
    return fields;
  });
  const document = new Document(synonyms.length === 0 ? plain : { synonyms, entries: plain });
  // A group per line ("- [money back, refund]"), so that the list reads as the admins wrote it.
  const groups = document.get('synonyms', true);
  if (isSeq(groups)) for (const group of groups.items) if (isSeq(group)) group.flow = true;
  // No line folding: an exported answer reads as it was written.
  return document.toString({ lineWidth: 0 });
}
