/**
 * Splits a command line into words the way a shell would for quotes: `faq add "How do I?" "Like this."`.
 * Unbalanced quotes keep the rest of the line as one word rather than failing.
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"?|'([^']*)'?|(\S+)/gu;
  for (const match of line.matchAll(pattern)) {
    const quoted = match[1] ?? match[2];
    words.push(quoted !== undefined ? quoted.replace(/\\(.)/gu, '$1') : (match[3] as string));
  }
  return words;
}

/** A message is a command when it starts with "/" (the local chat) or came as a platform slash command. */
export function commandLine(text: string): string | null {
  const trimmed = text.trim();
  return trimmed.startsWith('/') ? trimmed.slice(1) : null;
}
