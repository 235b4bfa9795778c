import {
  type ApplicationCommand,
  type ApplicationCommandManager,
  type ApplicationCommandOptionData,
  ApplicationCommandOptionType,
  type ApplicationCommandSubCommandData,
  type ApplicationCommandSubGroupData,
  ApplicationCommandType,
  ApplicationIntegrationType,
  type ChatInputApplicationCommandData,
  type ChatInputCommandInteraction,
  type Collection,
  DiscordAPIError,
  HTTPError,
  InteractionContextType,
  PermissionFlagsBits,
} from 'discord.js';
import type { Command } from '../../core/commands/command.js';
import { FAQ_FORMATS } from '../../core/faq/formats.js';
import type { Logger } from '../../log.js';
import { DiscordAdapterError } from './errors.js';

/** What the slash commands are built from: the engine's command list, without the code. */
export type CommandInfo = Pick<Command, 'words' | 'summary' | 'admin'>;

/**
 * How one slash-command option goes back into the engine's command line, in the order of the
 * table: text is quoted as one word (a question, an answer), words go as typed (tags), an
 * integer may carry its option word first ("epochs 3"), a flag adds its name when true, a
 * user gives their id, a file goes to the message's attachments.
 */
type OptionSpec = { readonly name: string; readonly description: string; readonly required?: boolean } & (
  | { readonly kind: 'text' | 'words' | 'user' | 'attachment' | 'flag' }
  | { readonly kind: 'integer'; readonly min?: number; readonly prefix?: string }
  | { readonly kind: 'choice'; readonly choices: readonly string[] }
);

/** The options of each command by its words; a command missing here takes its arguments as free text. */
const OPTIONS: Readonly<Record<string, readonly OptionSpec[]>> = {
  help: [],
  ask: [{ name: 'question', description: 'what you want to know', kind: 'text', required: true }],
  forget: [{ name: 'user', description: 'admins: someone else to forget', kind: 'user' }],
  export: [],
  'faq add': [
    { name: 'question', description: 'the question', kind: 'text', required: true },
    { name: 'answer', description: 'the answer', kind: 'text', required: true },
    { name: 'tags', description: 'tags, separated by spaces', kind: 'words' },
  ],
  'faq import': [
    { name: 'file', description: `the FAQ file: ${FAQ_FORMATS.join(', ')}`, kind: 'attachment', required: true },
    { name: 'mode', description: 'merge keeps entries the file lacks (the default); replace removes them', kind: 'choice', choices: ['merge', 'replace'] },
    { name: 'preview', description: 'show what would change, and change nothing', kind: 'flag' },
  ],
  'faq list': [{ name: 'page', description: 'the page number', kind: 'integer', min: 1 }],
  'faq remove': [{ name: 'entry', description: 'the number from /faq list, or the id', kind: 'text', required: true }],
  'faq export': [{ name: 'format', description: 'the file format (markdown by default)', kind: 'choice', choices: FAQ_FORMATS }],
  'faq clear': [{ name: 'code', description: 'the confirmation code from a first /faq clear', kind: 'text' }],
  'faq inbox': [],
  'faq inbox answer': [
    { name: 'number', description: 'the number from /faq inbox', kind: 'integer', min: 1, required: true },
    { name: 'answer', description: 'the answer', kind: 'text', required: true },
  ],
  'faq inbox link': [
    { name: 'number', description: 'the number from /faq inbox', kind: 'integer', min: 1, required: true },
    { name: 'entry', description: 'the entry that answers it: its number from /faq list, or its id', kind: 'text', required: true },
  ],
  'faq synonyms': [],
  'faq synonyms add': [{ name: 'phrases', description: 'two or more words or "quoted phrases" that mean the same', kind: 'words', required: true }],
  'faq synonyms remove': [{ name: 'number', description: 'the group number from /faq synonyms', kind: 'integer', min: 1, required: true }],
  'model finetune': [
    { name: 'epochs', description: 'passes over the FAQ', kind: 'integer', min: 1, prefix: 'epochs' },
    { name: 'lora', description: 'train LoRA adapters of this rank instead of every weight', kind: 'integer', min: 1, prefix: 'lora' },
  ],
  'model status': [],
  'model cancel': [],
  'model versions': [],
  'model use': [{ name: 'version', description: 'the version, e.g. v2 (see /model versions)', kind: 'text', required: true }],
  'model eval': [],
};

const FREE_TEXT: readonly OptionSpec[] = [{ name: 'arguments', description: 'the rest of the command line', kind: 'words' }];

function optionsOf(command: CommandInfo): readonly OptionSpec[] {
  return OPTIONS[command.words.join(' ')] ?? FREE_TEXT;
}

/** "faq inbox answer" is /faq inbox-answer: Discord nests one level of subcommands here. */
function subcommandName(command: CommandInfo): string {
  return command.words.slice(1).join('-');
}

/** Discord's pattern for command and option names. */
const SLASH_NAME = /^[-_\p{Ll}\p{N}]{1,32}$/u;
/** The second slash command of a first word whose commands are partly for admins: /faq-admin. */
const ADMIN_SUFFIX = '-admin';

/** One top-level slash command: the engine commands it holds, all for admins or all for members. */
interface SlashGroup {
  readonly name: string;
  readonly admin: boolean;
  readonly commands: readonly CommandInfo[];
}

/**
 * The top-level slash commands: one per first word; commands that share it are its subcommands.
 * Discord sets default permissions per top-level command, so a first word that has both member
 * and admin commands becomes two: /faq for members and /faq-admin for admins. Taken from each
 * command's `admin` flag, so that a new command lands on the right side.
 */
function slashGroups(commands: readonly CommandInfo[]): SlashGroup[] {
  const byWord = new Map<string, CommandInfo[]>();
  for (const command of commands) byWord.set(command.words[0], [...(byWord.get(command.words[0]) ?? []), command]);
  const groups = [...byWord].flatMap(([word, group]): SlashGroup[] => {
    const members = group.filter((command) => !command.admin);
    const admins = group.filter((command) => command.admin);
    if (members.length === 0 || admins.length === 0) return [{ name: word, admin: admins.length > 0, commands: group }];
    return [
      { name: word, admin: false, commands: members },
      { name: `${word}${ADMIN_SUFFIX}`, admin: true, commands: admins },
    ];
  });
  const names = new Set<string>();
  for (const { name } of groups) {
    if (!SLASH_NAME.test(name)) throw new DiscordAdapterError('DISCORD_COMMAND_SHAPE', `"/${name}" is not a name Discord takes: 1 to 32 lowercase letters, digits, - or _`);
    if (names.has(name)) throw new DiscordAdapterError('DISCORD_COMMAND_SHAPE', `"/${name}" is a command of its own and also where the admin commands of /${name.slice(0, -ADMIN_SUFFIX.length)} go; rename one`);
    names.add(name);
  }
  return groups;
}

/**
 * The slash commands' definitions. Admin commands ask for Manage Server by default and are
 * offered in guilds only (Discord's permissions mean nothing in a DM); the engine checks each
 * command's rights anyway, for guilds whose admins changed who may see what. Contexts say "not
 * in DMs" rather than dm_permission, which Discord deprecated and applies to global commands only.
 */
export function slashCommandDefinitions(commands: readonly CommandInfo[]): ChatInputApplicationCommandData[] {
  return slashGroups(commands).map(({ name, admin, commands: group }) => {
    const common = {
      name,
      type: ApplicationCommandType.ChatInput,
      defaultMemberPermissions: admin ? PermissionFlagsBits.ManageGuild : null,
      contexts: admin ? [InteractionContextType.Guild] : [InteractionContextType.Guild, InteractionContextType.BotDM],
      integrationTypes: [ApplicationIntegrationType.GuildInstall],
    } as const;
    if (group.length === 1 && group[0].words.length === 1) {
      return { ...common, description: fitDescription(group[0].summary), options: optionsOf(group[0]).map(optionData) };
    }
    const bare = group.find((command) => command.words.length === 1);
    if (bare) throw new DiscordAdapterError('DISCORD_COMMAND_SHAPE', `"/${name}" is a command and also has subcommands (${group.map(subcommandName).filter(Boolean).join(', ')}); Discord allows one or the other`);
    if (group.length > 25) throw new DiscordAdapterError('DISCORD_COMMAND_SHAPE', `"/${name}" has ${group.length} subcommands; Discord allows 25`);
    const subcommands: ApplicationCommandSubCommandData[] = group.map((command) => ({
      type: ApplicationCommandOptionType.Subcommand,
      name: subcommandName(command),
      description: fitDescription(command.summary),
      options: optionsOf(command).map(optionData),
    }));
    return { ...common, description: fitDescription(`${name}: ${group.map(subcommandName).join(', ')}`), options: subcommands };
  });
}

/** A plain option: what a subcommand may hold. */
type BasicOptionData = Exclude<ApplicationCommandOptionData, ApplicationCommandSubCommandData | ApplicationCommandSubGroupData>;

function optionData(spec: OptionSpec): BasicOptionData {
  const base = { name: spec.name, description: fitDescription(spec.description), required: spec.required ?? false };
  switch (spec.kind) {
    case 'text':
    case 'words':
      return { ...base, type: ApplicationCommandOptionType.String };
    case 'choice':
      return { ...base, type: ApplicationCommandOptionType.String, choices: spec.choices.map((choice) => ({ name: choice, value: choice })) };
    case 'integer':
      return { ...base, type: ApplicationCommandOptionType.Integer, ...(spec.min !== undefined ? { minValue: spec.min } : {}) };
    case 'flag':
      return { ...base, type: ApplicationCommandOptionType.Boolean };
    case 'user':
      return { ...base, type: ApplicationCommandOptionType.User };
    case 'attachment':
      return { ...base, type: ApplicationCommandOptionType.Attachment };
  }
}

/** Discord's limit on descriptions is 100 characters. */
function fitDescription(text: string): string {
  return text.length <= 100 ? text : `${text.slice(0, 99)}…`;
}

/** An option's value as an interaction carries it: strings, numbers, flags; a user's id; an attachment's id. */
export type OptionValue = string | number | boolean;

/** The engine's command line for a slash command's words and option values, e.g. `/faq add "Q?" "A." billing`. */
export function commandLine(command: CommandInfo, values: ReadonlyMap<string, OptionValue>): string {
  const words = [`/${command.words.join(' ')}`];
  for (const spec of optionsOf(command)) {
    const value = values.get(spec.name);
    if (value === undefined || spec.kind === 'attachment') continue;
    if (spec.kind === 'text') words.push(quote(String(value)));
    else if (spec.kind === 'flag') {
      if (value === true) words.push(spec.name);
    } else if (spec.kind === 'integer' && spec.prefix) words.push(spec.prefix, String(value));
    else words.push(String(value));
  }
  return words.join(' ');
}

/** Quoted so that the engine's splitWords gives back exactly `text` as one word. */
export function quote(text: string): string {
  return `"${text.replace(/["\\]/gu, '\\$&')}"`;
}

/** The command an interaction names: /faq-admin with subcommand inbox-answer is "faq inbox answer". */
export function commandOfInteraction(commands: readonly CommandInfo[], interaction: ChatInputCommandInteraction): CommandInfo | null {
  return commandOfSlash(commands, interaction.commandName, interaction.options.getSubcommand(false));
}

/** The command at slash command `name` and `subcommand` (null for a command without subcommands). */
export function commandOfSlash(commands: readonly CommandInfo[], name: string, subcommand: string | null): CommandInfo | null {
  const group = slashGroups(commands).find((candidate) => candidate.name === name);
  return group?.commands.find((command) => (subcommand === null ? command.words.length === 1 : subcommandName(command) === subcommand)) ?? null;
}

/** The attachment options' names, for the adapter to download from. */
export function attachmentOptionNames(command: CommandInfo): string[] {
  return optionsOf(command)
    .filter((spec) => spec.kind === 'attachment')
    .map((spec) => spec.name);
}

/**
 * Puts the slash commands in each guild of `guildIds` (at once, for testing and private bots),
 * or globally when there are none; skips a scope whose commands are already the same, so that
 * restarts do not rewrite them (Discord limits command updates). A scope Discord refuses (a
 * guild the bot is not in, a definition the server does not take) gets one log line that says
 * so and what to do, and no commands; the other scopes, mentions and DMs are not held up.
 */
export async function registerSlashCommands(
  manager: ApplicationCommandManager,
  definitions: readonly ChatInputApplicationCommandData[],
  guildIds: readonly string[],
  logger: Logger,
): Promise<void> {
  for (const guildId of guildIds.length > 0 ? guildIds : [null]) {
    const scope = guildId ? `guild ${guildId}` : 'global';
    try {
      const existing: Collection<string, ApplicationCommand> = guildId ? await manager.fetch({ guildId }) : await manager.fetch();
      if (sameCommands(existing, definitions)) {
        logger.info({ scope, commands: definitions.length }, 'Discord slash commands are up to date');
        continue;
      }
      if (guildId) await manager.set(definitions, guildId);
      else await manager.set(definitions);
      logger.info({ scope, commands: definitions.length }, 'registered the Discord slash commands');
    } catch (error) {
      if (!(error instanceof DiscordAPIError || error instanceof HTTPError)) throw error;
      const code = error instanceof DiscordAPIError ? error.code : null;
      logger.warn({ scope, discordCode: code, status: error.status }, `no slash commands in ${scope}: Discord refused them (${refusal(error)}); ${remedy(code, guildId)}`);
    }
  }
}

/** What Discord answered, on one line: "50035 Invalid Form Body; 0.contexts[UNKNOWN_FIELD]: ...". */
function refusal(error: DiscordAPIError | HTTPError): string {
  const message = error.message.replace(/\s*\n\s*/gu, '; ');
  return error instanceof DiscordAPIError ? `${error.code} ${message}` : `HTTP ${error.status} ${message}`;
}

/** Discord's error codes: https://discord.com/developers/docs/topics/opcodes-and-status-codes#json */
const MISSING_ACCESS = 50001;
const INVALID_FORM_BODY = 50035;

function remedy(code: number | string | null, guildId: string | null): string {
  const still = 'mentions and direct messages still work';
  if (code === MISSING_ACCESS && guildId) {
    return `the bot is not in that guild, or was added without the applications.commands scope. Invite it with the bot and applications.commands scopes, or take ${guildId} out of discord.guildIds (TUNEBOT_DISCORD_GUILD_IDS); ${still}`;
  }
  if (code === INVALID_FORM_BODY) return `the server does not take a field of tunebot's command definitions, named in its answer; ${still}`;
  return `the commands are registered again at the next start; ${still}`;
}

function sameCommands(existing: Collection<string, ApplicationCommand>, definitions: readonly ChatInputApplicationCommandData[]): boolean {
  return existing.size === definitions.length && definitions.every((definition) => existing.find((command) => command.name === definition.name)?.equals(definition, true) ?? false);
}
