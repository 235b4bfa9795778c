import type { IncomingMessage } from '../conversation/message.js';
import type { ReplyPart } from '../conversation/reply.js';
import type { Command } from './command.js';
import { helpText } from './command.js';
import { faqCommands } from './faq-commands.js';
import { modelCommands } from './model-commands.js';
import { exportCommand, forgetCommand } from './user-commands.js';

/** The one command set every adapter exposes. `ask` is answered by the engine itself. */
export function allCommands(answer: (message: IncomingMessage) => AsyncIterable<ReplyPart>): Command[] {
  const commands: Command[] = [forgetCommand, exportCommand, ...faqCommands, ...modelCommands];
  const help: Command = {
    words: ['help'],
    usage: 'help',
    summary: 'what you can ask me to do',
    admin: false,
    run: async ({ isAdmin }) => helpText([help, ask, ...commands], isAdmin),
  };
  const ask: Command = {
    words: ['ask'],
    usage: 'ask <question>',
    summary: 'ask a question (the same as writing it)',
    admin: false,
    run: ({ message, args }) => answer({ ...message, text: args.join(' '), via: message.via ?? message }),
  };
  return [help, ask, ...commands];
}
