/**
 * Splits a reply into Slack messages. Slack renders a message's text as one section, and a
 * section holds 3,000 characters, so longer replies go out as several messages.
 *
 * Where to cut, best first: a line break outside code in the second half of the window; the
 * end of a sentence in the line that crosses the limit; any line break outside code; a space;
 * and only when a ``` block by itself is over the limit, a line inside it, with the block
 * closed at the end of one part and reopened at the start of the next so that both render
 * as code. A boundary depends only on the text before the limit, so while a streamed reply
 * grows, a part that was cut once is cut the same way again.
 */
export const SLACK_SECTION_LIMIT = 3000;

const FENCE = '```';
const CLOSE = `\n${FENCE}`;
const SENTENCE_END = /[.!?…]["')\]]*(?=\s)/gu;
/** An entity as Slack escaping writes it (&amp; &lt; &gt;): a cut must not fall inside one. */
const MAX_ENTITY_LENGTH = 5;

interface Cut {
  /** The part, without the boundary's whitespace. */
  readonly part: string;
  readonly rest: string;
  /** The cut fell inside a code block: the part gets a closing fence, the rest an opening one. */
  readonly inCode: boolean;
}

export function splitSlackMessage(text: string, maxChars: number = SLACK_SECTION_LIMIT): string[] {
  if (!Number.isInteger(maxChars) || maxChars < 40) throw new RangeError(`maxChars must be a whole number of at least 40, got ${maxChars}`);
  const parts: string[] = [];
  let rest = text.replace(/^(?:[ \t]*\n)+/u, '').trimEnd();
  let reopen = false;
  while (rest.length > 0) {
    const body = reopen ? `${FENCE}\n${rest}` : rest;
    if (body.length <= maxChars) {
      parts.push(body);
      break;
    }
    const cut = findCut(body, maxChars, reopen ? FENCE.length + 1 : 0);
    parts.push(cut.inCode ? `${cut.part}${CLOSE}` : cut.part);
    rest = cut.rest;
    reopen = cut.inCode;
  }
  return parts;
}

/** `floor`: the reopening fence's length; a cut must keep something after it. */
function findCut(body: string, max: number, floor: number): Cut {
  const lines = scanLines(body, max);
  const outside = lines.boundaries.filter((boundary) => !boundary.inCode && boundary.at > floor);
  const lastOutside = outside.at(-1);
  if (lastOutside && lastOutside.at >= max / 2) return lineCut(body, lastOutside.at, false);

  const crossing = lines.crossing;
  const prose = !crossing.inCode;
  const after = Math.max(crossing.start, floor);
  if (prose) {
    const sentence = lastSentenceEnd(body, after, max);
    if (sentence !== null) return wordCut(body, sentence);
  }
  if (lastOutside) return lineCut(body, lastOutside.at, false);
  if (prose) {
    const space = lastSpace(body, after, max);
    if (space !== null) return wordCut(body, space);
  }
  // Only code from here on (or one unbroken word): cut inside it, leaving room for the closing fence.
  const codeMax = max - CLOSE.length;
  const inside = lines.boundaries.filter((boundary) => boundary.inCode && boundary.at > floor && boundary.at - 1 <= codeMax).at(-1);
  if (inside) return lineCut(body, inside.at, true);
  const inCode = crossing.inCode;
  return hardCut(body, inCode ? codeMax : max, floor, inCode);
}

interface LineBoundary {
  /** Index just after a '\n'. */
  readonly at: number;
  /** Whether the text from `at` on is inside a code block. */
  readonly inCode: boolean;
}

/** Line boundaries whose part fits in `max`, and the line that crosses `max`, with code state. */
function scanLines(body: string, max: number): { boundaries: LineBoundary[]; crossing: { start: number; inCode: boolean } } {
  const boundaries: LineBoundary[] = [];
  let inCode = false;
  let start = 0;
  for (;;) {
    const newline = body.indexOf('\n', start);
    const end = newline === -1 ? body.length : newline;
    // The crossing line counts as code if it opens a block: its own text is the block's start.
    const toggles = countFences(body.slice(start, end)) % 2 === 1;
    if (end > max || newline === -1) return { boundaries, crossing: { start, inCode: inCode || toggles } };
    if (toggles) inCode = !inCode;
    boundaries.push({ at: newline + 1, inCode });
    start = newline + 1;
  }
}

function countFences(line: string): number {
  let count = 0;
  for (let i = line.indexOf(FENCE); i !== -1; i = line.indexOf(FENCE, i + FENCE.length)) count += 1;
  return count;
}

function lastSentenceEnd(body: string, from: number, max: number): number | null {
  let found: number | null = null;
  const window = body.slice(from, max + 1);
  for (const match of window.matchAll(SENTENCE_END)) {
    const end = from + match.index + match[0].length;
    if (end <= max) found = end;
  }
  return found !== null && found > from ? found : null;
}

function lastSpace(body: string, from: number, max: number): number | null {
  for (let i = max; i > from; i -= 1) if (/\s/u.test(body[i])) return i;
  return null;
}

/** Blank lines at a boundary outside code are dropped; inside code they are the code's own. */
function lineCut(body: string, at: number, inCode: boolean): Cut {
  const rest = body.slice(at);
  return { part: body.slice(0, at).trimEnd(), rest: inCode ? rest : rest.replace(/^(?:[ \t]*\n)+/u, ''), inCode };
}

function wordCut(body: string, at: number): Cut {
  return { part: body.slice(0, at).trimEnd(), rest: body.slice(at).trimStart(), inCode: false };
}

function hardCut(body: string, limit: number, floor: number, inCode: boolean): Cut {
  let at = limit;
  // Neither half of a surrogate pair nor of an escaped entity.
  const before = body.charCodeAt(at - 1);
  if (before >= 0xd800 && before <= 0xdbff) at -= 1;
  const ampersand = body.lastIndexOf('&', at - 1);
  if (ampersand !== -1 && at - ampersand < MAX_ENTITY_LENGTH && !body.slice(ampersand, at).includes(';') && ampersand > floor) at = ampersand;
  return { part: body.slice(0, at), rest: body.slice(at), inCode };
}
