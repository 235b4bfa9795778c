/** Discord's limit on a message's content, in characters. */
export const DISCORD_MESSAGE_LIMIT = 2000;

const CLOSING_FENCE = '\n```';

/**
 * Splits a reply into messages of at most `limit` characters. A cut goes at the last paragraph
 * break, line break, sentence end or space in the second half of the allowance, in that order
 * of preference, then at the last of them anywhere; never inside a fenced code block. A code
 * block longer than a message on its own is cut between its lines, closed at the end of one
 * message and reopened (with its language) at the start of the next, so that every message
 * renders as code. Whitespace at the cuts and at the ends is dropped; empty text gives [].
 */
export function splitDiscordMessage(text: string, limit: number = DISCORD_MESSAGE_LIMIT): string[] {
  if (!Number.isInteger(limit) || limit < 32) throw new RangeError(`a message limit must be a whole number of at least 32 characters, got ${limit}`);
  const messages: string[] = [];
  let rest = text.trim();
  while (rest.length > limit) {
    const { head, tail } = cut(rest, limit);
    if (head) messages.push(head);
    rest = tail;
  }
  if (rest) messages.push(rest);
  return messages;
}

interface CodeBlock {
  /** The opening fence line's first character. */
  readonly start: number;
  /** Just after the closing fence line (the text's end when unclosed). */
  readonly end: number;
  /** The opening fence line, e.g. "```ts". */
  readonly opener: string;
}

function cut(text: string, limit: number): { head: string; tail: string } {
  const blocks = codeBlocks(text);
  const allowed = (p: number) => !blocks.some((block) => block.start < p && p < block.end);
  const half = Math.floor(limit / 2);
  for (const [from, kinds] of [
    [half, [isParagraphBreak, isLineBreak, isSentenceEnd, isSpace]],
    [1, [isLineBreak, isSentenceEnd, isSpace]],
  ] as const) {
    for (const kind of kinds) {
      for (let p = limit; p >= from; p -= 1) {
        if (kind(text, p) && allowed(p)) return { head: text.slice(0, p).trimEnd(), tail: text.slice(p).trimStart() };
      }
    }
  }
  const block = blocks.find((candidate) => candidate.start < limit && limit < candidate.end);
  if (block) return cutInsideBlock(text, limit, block);
  const p = avoidSurrogateSplit(text, limit);
  return { head: text.slice(0, p), tail: text.slice(p).trimStart() };
}

/** A block too long for one message (nothing before it could be cut off): close it, and reopen it in the next. */
function cutInsideBlock(text: string, limit: number, block: CodeBlock): { head: string; tail: string } {
  const room = limit - CLOSING_FENCE.length;
  const firstCodeLine = text.indexOf('\n', block.start) + 1;
  let p = room;
  while (p > firstCodeLine && text[p - 1] !== '\n') p -= 1;
  if (p <= firstCodeLine) p = avoidSurrogateSplit(text, room);
  const head = `${text.slice(0, p).replace(/\n$/u, '')}${CLOSING_FENCE}`;
  // An opener as long as a message (an unclosed fence on one huge line) is reopened bare, so that each cut makes progress.
  const opener = firstCodeLine > 0 && block.opener.length <= limit / 4 ? block.opener : '```';
  return { head, tail: `${opener}\n${text.slice(p)}` };
}

function codeBlocks(text: string): CodeBlock[] {
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

// Each boundary test says whether text.slice(0, p) may end a message.
function isParagraphBreak(text: string, p: number): boolean {
  return text[p - 1] === '\n' && text[p - 2] === '\n';
}

function isLineBreak(text: string, p: number): boolean {
  return text[p - 1] === '\n';
}

function isSentenceEnd(text: string, p: number): boolean {
  return /\s/u.test(text[p] ?? '') && /[.!?]["')\]]*$/u.test(text.slice(Math.max(0, p - 4), p));
}

function isSpace(text: string, p: number): boolean {
  return /\s/u.test(text[p] ?? '');
}

function avoidSurrogateSplit(text: string, p: number): number {
  const code = text.charCodeAt(p - 1);
  return code >= 0xd800 && code <= 0xdbff ? p - 1 : p;
}
