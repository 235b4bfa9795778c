/**
 * How a chat platform takes a reply's text: how long a message may be, and how it reads code
 * fences and escapes. splitMessage cuts a reply into such messages.
 */
export interface MessageFormat {
  /** The most characters one message holds. */
  readonly limit: number;
  /**
   * Where the platform sees code fences. 'line': a line that starts with ``` opens a block (its
   * language after the fence) and a line of only ``` closes it (Discord). 'anywhere': every ```
   * opens or closes a block, mid-line too (Slack).
   */
  readonly fences: 'line' | 'anywhere';
  /** The text carries escaped entities (&amp; &lt; &gt;), which a cut must not split (Slack). */
  readonly entities: boolean;
}

/** The least limit: room for a fenced part (an opener, a line of code and a closing fence). */
export const MIN_MESSAGE_LIMIT = 40;

const FENCE = '```';
const CLOSING_FENCE = `\n${FENCE}`;
/** An entity as the platforms escape them (&amp; &lt; &gt;). */
const MAX_ENTITY_LENGTH = 5;

/**
 * Splits a reply into messages of at most `format.limit` characters. A cut goes at the last
 * paragraph break, line break, sentence end or space in the second half of the allowance, in
 * that order of preference, then at the last line break, sentence end or space anywhere; never
 * inside a code block. A code block longer than a message on its own is cut between its lines,
 * closed at the end of one message and reopened (with its language, where the platform has
 * one) at the start of the next, so that every message renders as code. A word longer than a
 * message is cut where it must, but never inside a surrogate pair, a run of backticks or (with
 * `entities`) an escaped entity. Whitespace at the cuts and at the ends is dropped; blank text
 * gives [].
 *
 * A cut depends only on the text up to the limit (with 'line' fences, a fence line that
 * crosses the limit aside), so while a streamed reply grows, a message that was cut once is cut
 * the same way again and only the last one changes.
 */
export function splitMessage(text: string, format: MessageFormat): string[] {
  if (!Number.isInteger(format.limit) || format.limit < MIN_MESSAGE_LIMIT) {
    throw new RangeError(`a message limit must be a whole number of at least ${MIN_MESSAGE_LIMIT} characters, got ${format.limit}`);
  }
  const messages: string[] = [];
  let rest = text.trim();
  while (rest.length > format.limit) {
    const { head, tail } = cut(rest, format);
    messages.push(head);
    rest = tail;
  }
  if (rest) messages.push(rest);
  return messages;
}

interface CodeBlock {
  /** The opening fence's first character (its line's, for 'line' fences). */
  readonly start: number;
  /** Just after the closing fence (its line's end, for 'line' fences); the text's end when unclosed. */
  readonly end: number;
  /** What reopens the block in the next message, e.g. "```ts". */
  readonly opener: string;
}

function cut(text: string, format: MessageFormat): { head: string; tail: string } {
  const { limit } = format;
  const blocks = format.fences === 'line' ? lineFencedBlocks(text) : fencedBlocks(text);
  const blockAt = (p: number) => blocks.find((block) => block.start < p && p < block.end);
  const half = Math.floor(limit / 2);
  for (const [from, kinds] of [
    [half, [isParagraphBreak, isLineBreak, isSentenceEnd, isSpace]],
    [1, [isLineBreak, isSentenceEnd, isSpace]],
  ] as const) {
    for (const kind of kinds) {
      for (let p = limit; p >= from; p -= 1) {
        if (kind(text, p) && !blockAt(p)) return { head: text.slice(0, p).trimEnd(), tail: text.slice(p).trimStart() };
      }
    }
  }
  // One unbroken word, or a code block that nothing before it could be cut off from.
  const p = safeCut(text, limit, 0, format);
  const block = blockAt(p);
  return block ? cutInsideBlock(text, limit, block, format) : { head: text.slice(0, p), tail: text.slice(p).trimStart() };
}

/** A block too long for one message: closed at a line of its code, and reopened in the next. */
function cutInsideBlock(text: string, limit: number, block: CodeBlock, format: MessageFormat): { head: string; tail: string } {
  const room = limit - CLOSING_FENCE.length;
  const codeStart = block.start + FENCE.length;
  // No code fits before the closing fence (a block opened at the end of the allowance): it starts the next message.
  if (room <= codeStart) return { head: text.slice(0, block.start).trimEnd(), tail: text.slice(block.start) };
  const firstCodeLine = text.indexOf('\n', block.start) + 1;
  let p = room;
  while (p > firstCodeLine && text[p - 1] !== '\n') p -= 1;
  if (p <= firstCodeLine) p = safeCut(text, room, codeStart, format);
  const head = `${text.slice(0, p).replace(/\n$/u, '')}${CLOSING_FENCE}`;
  // An opener as long as a message (a fence with a huge line after it) is reopened bare, so that each cut makes progress.
  const opener = firstCodeLine > 0 && block.opener.length <= limit / 4 ? block.opener : FENCE;
  return { head, tail: `${opener}\n${text.slice(p)}` };
}

/** Blocks as CommonMark (and Discord) reads them: fences are lines of their own. */
function lineFencedBlocks(text: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  let open: { start: number; opener: string } | null = null;
  for (let lineStart = 0; lineStart <= text.length; ) {
    const newline = text.indexOf('\n', lineStart);
    const lineEnd = newline === -1 ? text.length : newline;
    const line = text.slice(lineStart, lineEnd);
    if (!open && /^\s*```[^`]*$/u.test(line)) open = { start: lineStart, opener: line.trim() };
    else if (open && /^\s*```+\s*$/u.test(line)) {
      blocks.push({ start: open.start, end: lineEnd, opener: open.opener });
      open = null;
    }
    lineStart = lineEnd + 1;
  }
  if (open) blocks.push({ start: open.start, end: text.length, opener: open.opener });
  return blocks;
}

/** Blocks as Slack reads them: each ``` toggles code, wherever it is; a block has no language. */
function fencedBlocks(text: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  let start: number | null = null;
  for (let i = text.indexOf(FENCE); i !== -1; i = text.indexOf(FENCE, i + FENCE.length)) {
    if (start === null) start = i;
    else {
      blocks.push({ start, end: i + FENCE.length, opener: FENCE });
      start = null;
    }
  }
  if (start !== null) blocks.push({ start, end: text.length, opener: FENCE });
  return blocks;
}

// Each boundary test says whether text.slice(0, p) may end a message.
function isParagraphBreak(text: string, p: number): boolean {
  return text[p - 1] === '\n' && text[p - 2] === '\n';
}

function isLineBreak(text: string, p: number): boolean {
  return text[p - 1] === '\n';
}

function isSentenceEnd(text: string, p: number): boolean {
  return /\s/u.test(text[p] ?? '') && /[.!?…]["')\]]*$/u.test(text.slice(Math.max(0, p - 4), p));
}

function isSpace(text: string, p: number): boolean {
  return /\s/u.test(text[p] ?? '');
}

/** `limit`, moved back (never to `floor` or before) so as not to cut a surrogate pair, an escaped entity or a run of backticks in two. */
function safeCut(text: string, limit: number, floor: number, format: MessageFormat): number {
  let at = limit;
  const before = text.charCodeAt(at - 1);
  if (before >= 0xd800 && before <= 0xdbff) at -= 1;
  if (format.entities) {
    const ampersand = text.lastIndexOf('&', at - 1);
    if (ampersand > floor && at - ampersand < MAX_ENTITY_LENGTH && !text.slice(ampersand, at).includes(';')) at = ampersand;
  }
  while (at > floor + 1 && text[at - 1] === '`' && text[at] === '`') at -= 1;
  return at;
}
