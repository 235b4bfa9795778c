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

  // In the line that crosses the limit, whether a cut is in code follows from the code state at
  // the line's start and the fences before the cut: only text before the limit decides.
  const crossing = lines.crossing;
  const after = Math.max(crossing.start, floor);
  const isProse = (at: number) => crossing.inCode === (countFences(body.slice(crossing.start, at)) % 2 === 1);
  const sentence = lastMatching(sentenceEnds(body, after, max), isProse);
  if (sentence !== null) return wordCut(body, sentence);
  if (lastOutside) return lineCut(body, lastOutside.at, false);
  const space = lastMatching(spaces(body, after, max), isProse);
  if (space !== null) return wordCut(body, space);
  // Only code from here on (or one unbroken word): cut inside it, leaving room for the closing fence.
  const codeMax = max - CLOSE.length;
  const inside = lines.boundaries.filter((boundary) => boundary.inCode && boundary.at > floor && boundary.at - 1 <= codeMax).at(-1);
  if (inside) return lineCut(body, inside.at, true);
  return hardCut(body, max, floor, isProse);
}

interface LineBoundary {
  /** Index just after a '\n'. */
  readonly at: number;
  /** Whether the text from `at` on is inside a code block. */
  readonly inCode: boolean;
}

/** Line boundaries whose part fits in `max`, and the line that crosses `max` with the code state at its start. */
function scanLines(body: string, max: number): { boundaries: LineBoundary[]; crossing: { start: number; inCode: boolean } } {
  const boundaries: LineBoundary[] = [];
  let inCode = false;
  let start = 0;
  for (;;) {
    const newline = body.indexOf('\n', start);
    const end = newline === -1 ? body.length : newline;
    if (end > max || newline === -1) return { boundaries, crossing: { start, inCode } };
    if (countFences(body.slice(start, end)) % 2 === 1) inCode = !inCode;
    boundaries.push({ at: newline + 1, inCode });
    start = newline + 1;
  }
}

function countFences(line: string): number {
  let count = 0;
  for (let i = line.indexOf(FENCE); i !== -1; i = line.indexOf(FENCE, i + FENCE.length)) count += 1;
  return count;
}

/** Positions just after a sentence's end (before the space that follows it), in (from, max]. */
function sentenceEnds(body: string, from: number, max: number): number[] {
  return [...body.slice(from, max + 1).matchAll(SENTENCE_END)].map((match) => from + match.index + match[0].length).filter((end) => end <= max && end > from);
}

/** Positions of whitespace in (from, max]: a cut there drops the space. */
function spaces(body: string, from: number, max: number): number[] {
  const found: number[] = [];
  for (let i = from + 1; i <= max; i += 1) if (/\s/u.test(body[i])) found.push(i);
  return found;
}

function lastMatching(candidates: readonly number[], accept: (at: number) => boolean): number | null {
  for (let i = candidates.length - 1; i >= 0; i -= 1) if (accept(candidates[i])) return candidates[i];
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

function hardCut(body: string, max: number, floor: number, isProse: (at: number) => boolean): Cut {
  const prose = safeCut(body, max, floor);
  if (isProse(prose)) return { part: body.slice(0, prose), rest: body.slice(prose), inCode: false };
  const at = safeCut(body, max - CLOSE.length, floor);
  return { part: body.slice(0, at), rest: body.slice(at), inCode: !isProse(at) };
}

/** `limit`, moved back so as not to cut a surrogate pair, an escaped entity or a fence in two. */
function safeCut(body: string, limit: number, floor: number): number {
  let at = limit;
  const before = body.charCodeAt(at - 1);
  if (before >= 0xd800 && before <= 0xdbff) at -= 1;
  const ampersand = body.lastIndexOf('&', at - 1);
  if (ampersand > floor && at - ampersand < MAX_ENTITY_LENGTH && !body.slice(ampersand, at).includes(';')) at = ampersand;
  while (at > floor + 1 && body[at - 1] === '`' && body[at] === '`') at -= 1;
  return at;
}
