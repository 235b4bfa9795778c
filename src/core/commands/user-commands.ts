import { type Command, CommandUsageError } from './command.js';

/** Commands for everyone: their own memory. (help and ask are in all-commands.ts.) */
export const forgetCommand: Command = {
  words: ['forget'],
  usage: 'forget [user id]',
  summary: 'erase what I remember of you (admins: of another user)',
  admin: false,
  async run({ message, args, isAdmin, services }) {
    const scope = { platform: message.platform, workspace: message.scope.workspace };
    if (args.length === 0) {
      await services.memory.forget(scope, message.user.id);
      return 'Done: I have forgotten our conversation.';
    }
    if (!isAdmin) return 'Only admins can make me forget another user. /forget alone erases what I remember of you.';
    if (args.length > 1) throw new CommandUsageError('Give one user id.');
    const target = args[0].replace(/^<@!?(\w+)>$/u, '$1');
    await services.memory.forget(scope, target);
    services.logger.info({ admin: `${message.platform}:${message.user.id}`, forgotten: target }, 'an admin made the bot forget a user');
    return `Done: I have forgotten my conversation with ${target}.`;
  },
};

export const exportCommand: Command = {
  words: ['export'],
  usage: 'export',
  summary: 'a copy of everything I remember of you, as JSON',
  admin: false,
  async run({ message, services }) {
    const data = await services.memory.exportUser({ platform: message.platform, workspace: message.scope.workspace }, message.user.id);
    return `\`\`\`json\n${JSON.stringify(data, null, 2)}\n\`\`\``;
  },
};
