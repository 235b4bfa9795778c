import { CodedError } from '../../coded-error.js';
import type { IncomingMessage } from '../conversation/message.js';
import type { ReplyPart } from '../conversation/reply.js';
import type { EngineServices } from '../services.js';

/**
 * One command, exposed by every adapter: the local chat types "/faq list", Discord and Slack
 * send it as a slash command. `run` streams its reply, like an answer, and may yield files.
 */
export interface CommandContext {
  readonly message: IncomingMessage;
  /** The words after the command's own words. */
  readonly args: readonly string[];
  readonly isAdmin: boolean;
  readonly services: EngineServices;
}

export interface Command {
  readonly words: readonly string[];
  readonly usage: string;
  readonly summary: string;
  readonly admin: boolean;
  run(context: CommandContext): AsyncIterable<ReplyPart> | Promise<ReplyPart>;
}

/** The command whose words start `line`'s words, preferring the longest ("faq inbox answer" over "faq inbox"). */
export function findCommand(commands: readonly Command[], words: readonly string[]): { command: Command; args: string[] } | null {
  let best: Command | null = null;
  for (const command of commands) {
    const matches = command.words.every((word, i) => words[i]?.toLowerCase() === word);
    if (matches && (!best || command.words.length > best.words.length)) best = command;
  }
  return best ? { command: best, args: words.slice(best.words.length) } : null;
}

export function helpText(commands: readonly Command[], isAdmin: boolean): string {
  const visible = commands.filter((command) => isAdmin || !command.admin);
  const lines = visible.map((command) => `/${command.usage} - ${command.summary}`);
  return `Ask me a question, or use a command:\n${lines.join('\n')}`;
}

/** A usage mistake inside a command: answered with the command's usage line. */
export class CommandUsageError extends CodedError<'USAGE'> {
  constructor(message: string) {
    super('USAGE', message);
  }
}
