import type { SynonymGroups } from '../retrieval/synonym-list.js';
import { FaqError, toRecord, type FaqRecord } from './entry.js';
import { readFileSynonyms, SYNONYMS_EXAMPLE } from './file-synonyms.js';
import type { FaqFileContents } from './formats.js';

/**
 * Markdown: a heading (level 1 to 3) per question, the answer the text under it up to the next
 * such heading. A heading with nothing under it but a deeper heading is a section title
 * ("# Billing" above "## How do I pay?") and is skipped; text before the first heading is an
 * introduction and is skipped too, but for the FAQ's synonym list, which an HTML comment there
 * carries (`<!-- faq-synonyms: [["money back", "refund"]] -->`). Lines in fenced code blocks are
 * never headings. An export keeps id, tags and alternates in an HTML comment under the heading;
 * comments render as nothing.
 */
const HEADING = /^ {0,3}(#{1,3})(?:[ \t]+(.*))?$/;
const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const META = /^<!--\s*faq:(.*)-->\s*$/;
const SYNONYMS = /^ {0,3}<!--\s*faq-synonyms:(.*)-->\s*$/;
/** A line that an export escaped with one more backslash, so that it does not read as a heading or fence. */
const ESCAPED = /^( {0,3})\\(\\*(?:#|`{3}|~{3}))/;

interface Section {
  level: number;
  question: string;
  line: number;
  body: string[];
}

export function parseMarkdown(text: string): FaqFileContents {
  const sections: Section[] = [];
  const fence = new FenceTracker();
  let synonyms: { value: string; line: number } | undefined;
  text.split(/\r\n|\r|\n/).forEach((line, index) => {
    const inFence = fence.inside;
    fence.next(line);
    const heading = inFence ? null : HEADING.exec(line);
    if (heading) {
      sections.push({ level: heading[1].length, question: headingText(heading[2] ?? ''), line: index + 1, body: [] });
      return;
    }
    const section = sections[sections.length - 1];
    if (section) section.body.push(inFence || fence.inside ? line : line.replace(ESCAPED, '$1$2'));
    const comment = section || inFence ? null : SYNONYMS.exec(line);
    if (comment) {
      if (synonyms) {
        throw new FaqError('FAQ_INVALID', `line ${index + 1}: a second faq-synonyms comment; the first is on line ${synonyms.line}`, { line: index + 1 });
      }
      synonyms = { value: comment[1], line: index + 1 };
    }
  });
  // Read in file order, so that the first problem is the one reported.
  const contents: FaqFileContents = { records: [] };
  if (synonyms) contents.synonyms = readSynonymsComment(synonyms.value, synonyms.line);
  contents.records = sectionRecords(sections);
  return contents;
}

function readSynonymsComment(json: string, line: number): string[][] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new FaqError('FAQ_INVALID', `line ${line}: the faq-synonyms comment must hold a JSON list of groups such as ${SYNONYMS_EXAMPLE}`, { line, cause: error });
  }
  return readFileSynonyms(value, line);
}

function sectionRecords(sections: readonly Section[]): FaqRecord[] {
  const records: FaqRecord[] = [];
  sections.forEach((section, i) => {
    if (section.question === '') {
      throw new FaqError('FAQ_INVALID', `line ${section.line}: a heading with no question`, { line: section.line });
    }
    const { meta, body } = splitMeta(section);
    const answer = body.join('\n').trim();
    const next = sections[i + 1];
    if (answer === '' && meta === undefined && next !== undefined && next.level > section.level) return;
    if (answer === '') {
      throw new FaqError('FAQ_INVALID', `line ${section.line}: the question "${section.question}" has no answer under its heading`, {
        line: section.line,
      });
    }
    records.push(toRecord({ question: section.question, answer, id: meta?.id, tags: meta?.tags, alternates: meta?.alternates }, section.line));
  });
  return records;
}

/** The heading's text without a closing run of '#' ("## Why? ##"). */
function headingText(rest: string): string {
  return rest.trim().replace(/(?:^|[ \t]+)#+$/, '').trim();
}

function splitMeta(section: Section): { meta?: { id?: unknown; tags?: unknown; alternates?: unknown }; body: string[] } {
  const first = section.body.findIndex((line) => line.trim() !== '');
  const match = first === -1 ? null : META.exec(section.body[first].trim());
  if (!match) return { body: section.body };
  const line = section.line + first + 1;
  let meta: unknown;
  try {
    meta = JSON.parse(match[1]);
  } catch (error) {
    throw new FaqError('FAQ_INVALID', `line ${line}: the faq comment must hold a JSON object such as {"id": "q1", "tags": ["billing"]}`, {
      line,
      cause: error,
    });
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    throw new FaqError('FAQ_INVALID', `line ${line}: the faq comment must hold a JSON object such as {"id": "q1", "tags": ["billing"]}`, { line });
  }
  const { id, tags, alternates } = meta as { id?: unknown; tags?: unknown; alternates?: unknown };
  return { meta: { id, tags, alternates }, body: section.body.slice(first + 1) };
}

/** CommonMark fences: ``` or ~~~ (three or more) open; the same character, at least as many, alone on a line, close. */
class FenceTracker {
  private open: { char: string; length: number } | null = null;

  get inside(): boolean {
    return this.open !== null;
  }

  /** Whether this line opens a fence (when outside one). */
  static opens(line: string): boolean {
    const match = FENCE.exec(line);
    return match !== null && !(match[1][0] === '`' && match[2].includes('`'));
  }

  next(line: string): void {
    const match = FENCE.exec(line);
    if (this.open === null) {
      if (match && FenceTracker.opens(line)) this.open = { char: match[1][0], length: match[1].length };
    } else if (match && match[1][0] === this.open.char && match[1].length >= this.open.length && match[2].trim() === '') {
      this.open = null;
    }
  }
}

export function serializeMarkdown(entries: readonly FaqRecord[], synonyms: SynonymGroups = []): string {
  const blocks = entries.map((entry) => {
    const lines = [`## ${entry.question}${entry.question.endsWith('#') ? ' #' : ''}`];
    const meta: { id?: string; tags?: string[]; alternates?: string[] } = {};
    if (entry.id !== undefined) meta.id = entry.id;
    if (entry.tags !== undefined) meta.tags = entry.tags;
    if (entry.alternates?.length) meta.alternates = entry.alternates;
    if (Object.keys(meta).length > 0 || META.test(entry.answer.split('\n')[0].trim())) {
      lines.push(`<!-- faq: ${commentJson(meta)} -->`);
    }
    lines.push('', escapeAnswer(entry.answer));
    return lines.join('\n');
  });
  if (synonyms.length > 0) blocks.unshift(`<!-- faq-synonyms: ${commentJson(synonyms)} -->`);
  return `${blocks.join('\n\n')}\n`;
}

/** JSON with '>' escaped, so that no value can end the comment early. */
function commentJson(value: unknown): string {
  return JSON.stringify(value).replace(/>/g, '\\u003e');
}

/**
 * Escapes, with one backslash, each answer line that would otherwise read as a question heading,
 * each line that already starts with escaping backslashes, and each fence the answer opens and
 * never closes (which would swallow the headings after it).
 */
function escapeAnswer(answer: string): string {
  const lines = answer.split('\n');
  const unclosedOpeners = new Set<number>();
  let outside: boolean[];
  for (;;) {
    const fence = new FenceTracker();
    let opener = -1;
    outside = lines.map((line, i) => {
      const wasInside = fence.inside;
      if (!unclosedOpeners.has(i)) fence.next(line);
      if (!wasInside && fence.inside) opener = i;
      return !wasInside && !fence.inside;
    });
    if (!fence.inside) break;
    unclosedOpeners.add(opener);
  }
  return lines
    .map((line, i) => {
      const escape = unclosedOpeners.has(i) || (outside[i] && (HEADING.test(line) || /^ {0,3}\\+(?:#|`{3}|~{3})/.test(line)));
      return escape ? line.replace(/^( {0,3})/, '$1\\') : line;
    })
    .join('\n');
}
