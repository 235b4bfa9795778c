/**
 * Text between Slack's format and the engine's. Slack escapes &, < and > in what it sends and
 * expects them escaped in what it gets, writes links and mentions as <...> tokens, and shows a
 * code fence's language name as the block's first line.
 */

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

/** What the engine writes, as Slack text: escaped, and fences without a language name. */
export function toSlackText(text: string): string {
  return text
    .replace(/^([ \t]*```)[\w+#.-]+[ \t]*$/gmu, '$1')
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;');
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
