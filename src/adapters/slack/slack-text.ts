import type { MessageFormat } from '../split-message.js';

/**
 * Text between Slack's format and the engine's. Slack escapes &, < and > in what it sends and
 * expects them escaped in what it gets, writes links and mentions as <...> tokens, and shows a
 * code fence's language name as the block's first line.
 */

/**
 * Slack messages: Slack renders a message's text as one section, which holds 3,000 characters;
 * every ``` toggles code, mid-line too; text is escaped (&amp; &lt; &gt;).
 */
export const SLACK_MESSAGES: MessageFormat = { limit: 3000, fences: 'anywhere', entities: true };

/** A user's message as the engine reads it: the bot's mention removed, links and entities plain. */
export function fromSlackText(text: string, botUserId: string | null): string {
  let plain = text;
  if (botUserId) plain = plain.replaceAll(new RegExp(`<@${botUserId}(?:\\|[^>]*)?>`, 'gu'), '');
  plain = plain
    // <https://x|label> and <mailto:a@b|a@b> -> the label; <https://x> -> the address.
    .replace(/<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>/gu, (_, url: string, label?: string) => label || url)
    // <#C123|general> -> #general; a user mention stays, without its label, so that "forget <@U123>" names a user.
    .replace(/<#\w+\|([^>]*)>/gu, '#$1')
    .replace(/<@(\w+)\|[^>]*>/gu, '<@$1>');
  return unescapeEntities(plain).trim();
}

/**
 * What the engine writes (Markdown: FAQ answers hold bold, links and lists), as Slack mrkdwn:
 * **bold** and __bold__ as *bold*, *italic* as _italic_, ~~struck~~ as ~struck~, [label](url)
 * as <url|label>, headings as a bold line, - and * list items as bullets, as Discord shows
 * them (+ lines stay: the import summary's "+ 2 new"); &, < and > escaped everywhere else.
 * Code (fenced or `inline`) keeps its text, escaped only; a fence loses its language name,
 * which Slack would show as the block's first line.
 */
export function toSlackText(text: string): string {
  let inFence = false;
  return text
    .split('\n')
    .map((line) => {
      const fence = /^([ \t]*```)[\w+#.-]*[ \t]*$/u.exec(line);
      if (fence) {
        inFence = !inFence;
        return fence[1];
      }
      return inFence ? escapeText(line) : mrkdwnLine(line);
    })
    .join('\n');
}

/** Slack needs these three escaped in text; its own tokens (<url|label>) are written unescaped. */
function escapeText(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

function mrkdwnLine(line: string): string {
  const heading = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/u.exec(line);
  if (heading) return heading[1] ? `*${mrkdwnInline(stripEmphasis(heading[1]))}*` : '';
  const bullet = /^([ \t]*)[-*][ \t]+(.*)$/u.exec(line);
  if (bullet) return `${bullet[1]}• ${mrkdwnInline(bullet[2])}`;
  return mrkdwnInline(line);
}

/**
 * Markdown's inline marks, innermost first through recursion on each mark's content. The
 * single-* and _ marks need a non-word character (or the line's edge) outside and no space
 * inside, as CommonMark's flanking rules ask, so that 2*3*4 and snake_case stay as written.
 */
const INLINE =
  /(`+)(.+?)\1|\\([\\`*_{}[\]()#+\-.!~|>])|\[([^\]]+)\]\(<?([^)\s>]+)>?(?:[ \t]+"[^"]*")?\)|<((?:https?|mailto):[^>\s]+)>|\*\*(?=\S)(.+?)(?<=\S)\*\*|(?<![\w_])__(?=\S)(.+?)(?<=\S)__(?![\w_])|~~(?=\S)(.+?)(?<=\S)~~|(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])/gu;

function mrkdwnInline(text: string): string {
  let out = '';
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    const [whole, , code, escaped, label, url, autolink, strong, strongUnderscore, struck, emphasis] = match;
    out += escapeText(text.slice(last, match.index));
    last = match.index + whole.length;
    if (code !== undefined) out += `\`${escapeText(code)}\``;
    else if (escaped !== undefined) out += escapeText(escaped);
    else if (label !== undefined) out += `<${escapeText(url)}|${mrkdwnInline(label)}>`;
    else if (autolink !== undefined) out += `<${escapeText(autolink)}>`;
    else if (strong !== undefined || strongUnderscore !== undefined) out += `*${mrkdwnInline(strong ?? strongUnderscore)}*`;
    else if (struck !== undefined) out += `~${mrkdwnInline(struck)}~`;
    else out += `_${mrkdwnInline(emphasis)}_`;
  }
  return out + escapeText(text.slice(last));
}

/** A heading is bold already: marks inside it would close Slack's bold early. */
function stripEmphasis(text: string): string {
  return text.replace(/(\*\*|__)(?=\S)(.+?)(?<=\S)\1/gu, '$2');
}

/**
 * A command line from a slash command or a message: Slack clients and phones type curly
 * quotes, and the engine's command parser splits on straight ones.
 */
export function straightenQuotes(text: string): string {
  return text.replace(/[\u201C\u201D\u201E\u00AB\u00BB]/gu, '"').replace(/[\u2018\u2019\u201A]/gu, "'");
}

function unescapeEntities(text: string): string {
  return text.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');
}
