import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationCommandOptionType, type ApplicationCommandOptionData, PermissionFlagsBits } from 'discord.js';
import { DiscordAdapterError } from '../../src/adapters/discord/errors.js';
import { type CommandInfo, commandLine, type OptionValue, quote, slashCommandDefinitions } from '../../src/adapters/discord/slash-commands.js';
import { allCommands } from '../../src/core/commands/all-commands.js';
import { findCommand } from '../../src/core/commands/command.js';
import { splitWords } from '../../src/core/commands/parse.js';

const commands = allCommands(async function* () {});
const definitions = slashCommandDefinitions(commands);
const NAME = /^[-_\p{Ll}\p{N}]{1,32}$/u;

function subcommandsOf(name: string): ApplicationCommandOptionData[] {
  const definition = definitions.find((candidate) => candidate.name === name);
  assert.ok(definition, `/${name} is defined`);
  return [...(definition.options ?? [])];
}

describe('Discord slash commands from the engine commands', () => {
  it('gives each first word one command, and the rest of the words subcommands', () => {
    assert.deepEqual(
      definitions.map((definition) => definition.name),
      ['help', 'ask', 'forget', 'export', 'faq', 'model'],
    );
    assert.deepEqual(
      subcommandsOf('faq').map((option) => option.name),
      ['add', 'import', 'list', 'remove', 'export', 'clear', 'inbox', 'inbox-answer'],
    );
    assert.deepEqual(
      subcommandsOf('model').map((option) => option.name),
      ['finetune', 'status', 'cancel', 'versions', 'use', 'eval'],
    );
    for (const option of [...subcommandsOf('faq'), ...subcommandsOf('model')]) assert.equal(option.type, ApplicationCommandOptionType.Subcommand);
  });

  it('takes the FAQ file for /faq import as an attachment option', () => {
    const importCommand = subcommandsOf('faq').find((option) => option.name === 'import');
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

  it('asks for Manage Server by default only where every subcommand is for admins', () => {
    for (const definition of definitions) assert.equal(definition.defaultMemberPermissions, null, `/${definition.name} mixes admin and member commands`);
    const adminOnly: CommandInfo[] = [
      { words: ['ops', 'restart'], summary: 'restart', admin: true },
      { words: ['ops', 'drain'], summary: 'drain', admin: true },
    ];
    assert.equal(slashCommandDefinitions(adminOnly)[0].defaultMemberPermissions, PermissionFlagsBits.ManageGuild);
  });

  it('refuses a command list Discord cannot take', () => {
    const clash: CommandInfo[] = [
      { words: ['faq'], summary: 'the FAQ', admin: false },
      { words: ['faq', 'add'], summary: 'add', admin: true },
    ];
    assert.throws(() => slashCommandDefinitions(clash), (error: unknown) => error instanceof DiscordAdapterError && error.code === 'DISCORD_COMMAND_SHAPE');
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
