import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationCommandOptionType, type ApplicationCommandOptionData, type ChatInputApplicationCommandData, InteractionContextType, PermissionFlagsBits } from 'discord.js';
import { DiscordAdapterError } from '../../src/adapters/discord/errors.js';
import { type CommandInfo, commandLine, commandOfSlash, type OptionValue, quote, slashCommandDefinitions } from '../../src/adapters/discord/slash-commands.js';
import { allCommands } from '../../src/core/commands/all-commands.js';
import { findCommand } from '../../src/core/commands/command.js';
import { splitWords } from '../../src/core/commands/parse.js';

const commands = allCommands(async function* () {});
const definitions = slashCommandDefinitions(commands);
const NAME = /^[-_\p{Ll}\p{N}]{1,32}$/u;

function subcommandsOf(name: string, from = definitions): ApplicationCommandOptionData[] {
  const definition = from.find((candidate) => candidate.name === name);
  assert.ok(definition, `/${name} is defined`);
  return [...(definition.options ?? [])];
}

/** The subcommand names of each slash command, null for one without subcommands. */
function slashPaths(definition: ChatInputApplicationCommandData): (string | null)[] {
  const subcommands = (definition.options ?? []).filter((option) => option.type === ApplicationCommandOptionType.Subcommand);
  return subcommands.length > 0 ? subcommands.map((option) => option.name) : [null];
}

describe('Discord slash commands from the engine commands', () => {
  it('gives each first word one command, and the rest of the words subcommands', () => {
    assert.deepEqual(
      definitions.map((definition) => definition.name),
      ['help', 'ask', 'forget', 'export', 'faq', 'faq-admin', 'model', 'model-admin'],
    );
    const names = (name: string) => subcommandsOf(name).map((option) => option.name);
    assert.deepEqual(names('faq'), ['list', 'export', 'synonyms']);
    assert.deepEqual(names('faq-admin'), ['add', 'import', 'remove', 'clear', 'inbox', 'inbox-answer', 'inbox-link', 'synonyms-add', 'synonyms-remove']);
    assert.deepEqual(names('model'), ['status', 'versions']);
    assert.deepEqual(names('model-admin'), ['finetune', 'cancel', 'use', 'eval']);
    for (const name of ['faq', 'faq-admin', 'model', 'model-admin']) for (const option of subcommandsOf(name)) assert.equal(option.type, ApplicationCommandOptionType.Subcommand);
  });

  it('takes the FAQ file for /faq import as an attachment option', () => {
    const importCommand = subcommandsOf('faq-admin').find((option) => option.name === 'import');
    assert.ok(importCommand && 'options' in importCommand && importCommand.options);
    const file = importCommand.options.find((option) => option.name === 'file');
    assert.deepEqual(file && { type: file.type, required: 'required' in file && file.required }, { type: ApplicationCommandOptionType.Attachment, required: true });
  });

  it('keeps within Discord limits: names, descriptions of up to 100 characters, required options first', () => {
    const check = (option: { name: string; description: string; options?: readonly ApplicationCommandOptionData[] }) => {
      assert.match(option.name, NAME);
      assert.ok(option.description.length >= 1 && option.description.length <= 100, `${option.name}: ${option.description}`);
      const required = (option.options ?? []).map((child) => 'required' in child && child.required === true);
      assert.deepEqual(required, [...required].sort((a, b) => Number(b) - Number(a)), `${option.name}: a required option after an optional one`);
      for (const child of option.options ?? []) check(child);
    };
    for (const definition of definitions) check(definition);
  });

  it('puts every admin command under a slash command that asks for Manage Server in guilds, and no member command', () => {
    const reached: CommandInfo[] = [];
    for (const definition of definitions) {
      for (const subcommand of slashPaths(definition)) {
        const command = commandOfSlash(commands, definition.name, subcommand);
        assert.ok(command, `/${definition.name} ${subcommand ?? ''} maps back to an engine command`);
        reached.push(command);
        const where = `/${definition.name} ${subcommand ?? ''} holds /${command.words.join(' ')}`;
        assert.equal(definition.defaultMemberPermissions, command.admin ? PermissionFlagsBits.ManageGuild : null, where);
        assert.deepEqual(definition.contexts, command.admin ? [InteractionContextType.Guild] : [InteractionContextType.Guild, InteractionContextType.BotDM], where);
      }
    }
    assert.equal(PermissionFlagsBits.ManageGuild, 32n);
    assert.deepEqual(reached.map((command) => command.words.join(' ')).sort(), commands.map((command) => command.words.join(' ')).sort(), 'every command exactly once');
  });

  it("places a new command by its admin flag: beside its first word's members or admins, or in a command of its own", () => {
    const more: CommandInfo[] = [
      ...commands,
      { words: ['faq', 'purge'], summary: 'purge', admin: true },
      { words: ['model', 'info'], summary: 'info', admin: false },
      { words: ['ops', 'restart'], summary: 'restart', admin: true },
      { words: ['ops', 'drain'], summary: 'drain', admin: true },
    ];
    const placed = slashCommandDefinitions(more);
    assert.ok(subcommandsOf('faq-admin', placed).some((option) => option.name === 'purge'));
    assert.ok(subcommandsOf('model', placed).some((option) => option.name === 'info'));
    const ops = placed.filter((definition) => definition.name.startsWith('ops'));
    assert.deepEqual(
      ops.map((definition) => [definition.name, definition.defaultMemberPermissions]),
      [['ops', PermissionFlagsBits.ManageGuild]],
      'a first word with admin commands only stays one command',
    );
  });

  it('refuses a command list Discord cannot take', () => {
    const refused = (list: CommandInfo[], message: RegExp) =>
      assert.throws(() => slashCommandDefinitions(list), (error: unknown) => error instanceof DiscordAdapterError && error.code === 'DISCORD_COMMAND_SHAPE' && message.test(error.message));
    const faqList: CommandInfo = { words: ['faq', 'list'], summary: 'list', admin: false };
    const faqAdd: CommandInfo = { words: ['faq', 'add'], summary: 'add', admin: true };
    refused([{ words: ['faq'], summary: 'the FAQ', admin: false }, faqList], /"\/faq" is a command and also has subcommands \(list\)/u);
    refused([faqList, faqAdd, { words: ['faq-admin'], summary: 'clash', admin: true }], /"\/faq-admin" is a command of its own and also where the admin commands of \/faq go/u);
    refused([{ words: ['FAQ'], summary: 'shout', admin: false }], /"\/FAQ" is not a name Discord takes/u);
  });

  it('turns every command back into a line the engine routes to the same command', () => {
    const sample: Record<string, OptionValue> = { question: 'Q?', answer: 'A.', entry: '2', page: 2, number: 1, version: 'v2', code: 'abc', epochs: 3, lora: 4, format: 'csv', mode: 'replace', preview: true, tags: 'x y', arguments: 'a b', user: '42' };
    for (const command of commands) {
      const line = commandLine(command, new Map(Object.entries(sample)));
      const found = findCommand(commands, splitWords(line.slice(1)));
      assert.deepEqual(found?.command.words, command.words, line);
    }
    assert.equal(commandLine(commands.find((command) => command.words.join(' ') === 'model finetune') as CommandInfo, new Map([['lora', 8]])), '/model finetune lora 8');
    const importLine = commandLine(commands.find((command) => command.words.join(' ') === 'faq import') as CommandInfo, new Map<string, OptionValue>([['file', '99'], ['mode', 'replace'], ['preview', false]]));
    assert.equal(importLine, '/faq import replace');
  });

  it('quotes text so that the engine reads it back unchanged, quotes, backslashes and new lines included', () => {
    const add = commands.find((command) => command.words.join(' ') === 'faq add') as CommandInfo;
    for (const question of ['How do I "reset" it?', 'C:\\path\\to\\', 'two\nlines', '', "it's \\\" tricky"]) {
      const line = commandLine(add, new Map<string, OptionValue>([['question', question], ['answer', 'Like "this".'], ['tags', 'billing  account']]));
      assert.deepEqual(splitWords(line.slice(1)), ['faq', 'add', question, 'Like "this".', 'billing', 'account']);
    }
    assert.equal(quote('a "b" \\c'), '"a \\"b\\" \\\\c"');
  });
});
