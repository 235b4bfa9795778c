import type { FaqEntry } from '../faq/entry.js';
import type { FaqStore, ImportPreview } from '../faq/faq-store.js';
import { detectFormat, FAQ_FILE_EXTENSIONS, FAQ_FORMATS, type FaqFormat, parseFaqDocument, serializeFaq, SYNONYM_FORMATS, toFaqFormat } from '../faq/formats.js';
import type { Overlap } from '../faq/overlaps.js';
import { type Command, CommandUsageError } from './command.js';

const add: Command = {
  words: ['faq', 'add'],
  usage: 'faq add "question" "answer" [tag ...]',
  summary: 'add an entry to the FAQ',
  admin: true,
  async run({ message, args, services }) {
    if (args.length < 2) throw new CommandUsageError('Give the question and the answer, each in quotes.');
    const faq = services.faqFor(message);
    return describeAdded(faq, await faq.add(args[0], args[1], args.slice(2)));
  },
};

/** "Added q5: ...", and the entries it nearly repeats with another answer. */
async function describeAdded(faq: FaqStore, entry: FaqEntry): Promise<string> {
  return [`Added ${entry.id}: "${entry.question}"`, ...describeOverlaps(await faq.overlapsWith([entry.id]))].join('\n');
}

const importCommand: Command = {
  words: ['faq', 'import'],
  usage: 'faq import [merge|replace] [preview] (with a file attached)',
  summary: `import a ${FAQ_FORMATS.join(', ')} file: merge keeps entries the file lacks, replace removes them`,
  admin: true,
  async run({ message, args, services }) {
    const file = message.attachments[0];
    if (!file) throw new CommandUsageError('Attach the FAQ file to the command.');
    const mode = args.includes('replace') ? 'replace' : 'merge';
    const previewOnly = args.includes('preview');
    const { records, synonyms } = parseFaqDocument(await file.bytes(), detectFormat(file.name));
    const faq = services.faqFor(message);
    if (previewOnly) return `Preview of ${file.name} (${mode}; nothing changed yet):\n${describe(await faq.previewImport(records, { synonyms }), mode)}`;
    const result = await faq.applyImport(records, mode, { synonyms });
    return `Imported ${file.name} (${mode}):\n${describe(result, mode)}`;
  },
};

function describe(preview: ImportPreview, mode: 'merge' | 'replace'): string {
  const lines = [`+ ${preview.add.length} new`, `~ ${preview.change.length} changed`, `= ${preview.unchanged} unchanged`];
  lines.push(mode === 'replace' ? `- ${preview.remove.length} removed` : `(${preview.remove.length} not in the file, kept)`);
  for (const entry of preview.add.slice(0, 5)) lines.push(`  + ${entry.question}`);
  for (const { after } of preview.change.slice(0, 5)) lines.push(`  ~ ${after.question}`);
  if (mode === 'replace') for (const entry of preview.remove.slice(0, 5)) lines.push(`  - ${entry.question}`);
  if (preview.synonyms) {
    const { before, after } = preview.synonyms;
    lines.push(`* ${groups(after.length)} from the file replace the synonym list (${groups(before.length)} before)`);
  }
  lines.push(...describeOverlaps(preview.overlaps));
  return lines.join('\n');
}

const SHOWN_OVERLAPS = 5;

function describeOverlaps(overlaps: readonly Overlap[]): string[] {
  if (overlaps.length === 0) return [];
  const lines = ['! these entries ask nearly the same thing with different answers:'];
  for (const { first, second } of overlaps.slice(0, SHOWN_OVERLAPS)) lines.push(`  ${first.id} "${first.phrasing}" / ${second.id} "${second.phrasing}"`);
  if (overlaps.length > SHOWN_OVERLAPS) lines.push(`  and ${overlaps.length - SHOWN_OVERLAPS} more`);
  return lines;
}

function groups(count: number): string {
  return `${count} synonym group${count === 1 ? '' : 's'}`;
}

const list: Command = {
  words: ['faq', 'list'],
  usage: 'faq list [page]',
  summary: 'the FAQ, a page at a time',
  admin: false,
  async run({ message, args, services }) {
    const page = args[0] ? Number(args[0]) : 1;
    if (!Number.isInteger(page) || page < 1) throw new CommandUsageError(`"${args[0]}" is not a page number.`);
    const result = await services.faqFor(message).list(page, 10);
    if (result.total === 0) return 'The FAQ is empty. Admins add entries with /faq add or /faq import.';
    const lines = result.entries.map((entry, i) => `${result.first + i}. ${entry.question} (${entry.id})`);
    return `FAQ page ${result.page}/${result.pages} (${result.total} entries):\n${lines.join('\n')}`;
  },
};

const remove: Command = {
  words: ['faq', 'remove'],
  usage: 'faq remove <number or id>',
  summary: 'remove an entry',
  admin: true,
  async run({ message, args, services }) {
    if (args.length !== 1) throw new CommandUsageError('Give the entry number from /faq list, or its id.');
    const target = /^\d+$/u.test(args[0]) ? Number(args[0]) : args[0];
    const entry = await services.faqFor(message).remove(target);
    return `Removed "${entry.question}".`;
  },
};

const FAQ_CONTENT_TYPES: Readonly<Record<FaqFormat, string>> = {
  csv: 'text/csv; charset=utf-8',
  json: 'application/json',
  jsonl: 'application/jsonl',
  yaml: 'application/yaml',
  markdown: 'text/markdown; charset=utf-8',
};

const exportFaq: Command = {
  words: ['faq', 'export'],
  usage: `faq export [${FAQ_FORMATS.join('|')}]`,
  summary: 'the whole FAQ as a file',
  admin: false,
  async run({ message, args, services }) {
    const format = toFaqFormat(args[0] ?? 'markdown');
    const { entries, synonyms } = await services.faqFor(message).contents();
    if (entries.length === 0) return 'The FAQ is empty: there is nothing to export.';
    const title = `The FAQ (${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}) as ${format}.`;
    const lost =
      synonyms.length > 0 && !SYNONYM_FORMATS.includes(format)
        ? ` ${format.toUpperCase()} cannot hold its ${groups(synonyms.length)}: export as ${SYNONYM_FORMATS.join(', ')} to keep them.`
        : '';
    return {
      kind: 'file',
      name: `faq${FAQ_FILE_EXTENSIONS[format]}`,
      contentType: FAQ_CONTENT_TYPES[format],
      data: new TextEncoder().encode(serializeFaq(entries, format, synonyms)),
      title: title + lost,
    };
  },
};

const clear: Command = {
  words: ['faq', 'clear'],
  usage: 'faq clear [confirmation code]',
  summary: 'remove every entry (asks for a confirmation first)',
  admin: true,
  async run({ message, args, services }) {
    const faq = services.faqFor(message);
    if (args.length === 0) {
      const request = await faq.requestClear();
      return `This removes all ${request.total} entries. To confirm within a minute, send: /faq clear ${request.token}`;
    }
    const removed = await faq.clear(args[0]);
    return `Cleared the FAQ (${removed} entries removed).`;
  },
};

const inbox: Command = {
  words: ['faq', 'inbox'],
  usage: 'faq inbox',
  summary: 'questions I could not answer confidently',
  admin: true,
  async run({ message, services }) {
    const items = await services.inboxFor(message).items();
    if (items.length === 0) return 'The inbox is empty.';
    const lines = items.map((item, i) => `${i + 1}. ${item.question} (${item.reason === 'thumbs-down' ? `thumbs-down on my answer${item.entryId ? ` from ${item.entryId}` : ''} ${item.at.slice(0, 10)}` : `asked ${item.at.slice(0, 10)}, best match ${item.bestScore}`})`);
    return `${lines.join('\n')}\nTurn one into an FAQ entry: /faq inbox answer <number> "the answer"; or teach me that it asks an existing entry: /faq inbox link <number> <entry>`;
  },
};

const inboxAnswer: Command = {
  words: ['faq', 'inbox', 'answer'],
  usage: 'faq inbox answer <number> "answer"',
  summary: 'add an inbox question to the FAQ with its answer',
  admin: true,
  async run({ message, args, services }) {
    if (args.length !== 2) throw new CommandUsageError('Give the inbox number and the answer in quotes.');
    const faq = services.faqFor(message);
    return services.inboxFor(message).takeFor(position(args[0], 'inbox number'), async (item) => describeAdded(faq, await faq.add(item.question, args[1])));
  },
};

const inboxLink: Command = {
  words: ['faq', 'inbox', 'link'],
  usage: 'faq inbox link <number> <entry>',
  summary: 'teach me an inbox question: add it to an FAQ entry as another way of asking it',
  admin: true,
  async run({ message, args, services }) {
    if (args.length !== 2) throw new CommandUsageError('Give the inbox number and the entry (its number from /faq list, or its id).');
    return services.inboxFor(message).takeFor(position(args[0], 'inbox number'), async (item) => {
      const entry = await services.faqFor(message).linkAlternate(/^\d+$/u.test(args[1]) ? Number(args[1]) : args[1], item.question);
      return `Linked "${item.question}" to ${entry.id} ("${entry.question}"); it has ${entry.alternates.length} other phrasing${entry.alternates.length === 1 ? '' : 's'}. The next fine-tune trains on it.`;
    });
  },
};

const synonyms: Command = {
  words: ['faq', 'synonyms'],
  usage: 'faq synonyms',
  summary: "the FAQ's synonym list: words and phrases that mean the same here",
  admin: false,
  async run({ message, services }) {
    const groups = await services.faqFor(message).synonyms();
    if (groups.length === 0) return 'The FAQ has no synonyms of its own. Admins add a group with /faq synonyms add "phrase" "phrase" ...';
    return describeSynonyms(groups);
  },
};

const synonymsAdd: Command = {
  words: ['faq', 'synonyms', 'add'],
  usage: 'faq synonyms add "phrase" "phrase" ...',
  summary: 'add a group of words or phrases that mean the same in this FAQ',
  admin: true,
  async run({ message, args, services }) {
    if (args.length < 2) throw new CommandUsageError('Give two or more words or phrases, each phrase in quotes.');
    const groups = await services.faqFor(message).setSynonyms([args], 'add');
    return `The synonym list has ${groups.length} group${groups.length === 1 ? '' : 's'}:\n${describeSynonyms(groups)}`;
  },
};

const synonymsRemove: Command = {
  words: ['faq', 'synonyms', 'remove'],
  usage: 'faq synonyms remove <number>',
  summary: 'remove a synonym group',
  admin: true,
  async run({ message, args, services }) {
    if (args.length !== 1) throw new CommandUsageError('Give the group number from /faq synonyms.');
    const removed = await services.faqFor(message).removeSynonymGroup(position(args[0], 'group number'));
    return `Removed the synonyms ${removed.join(' = ')}.`;
  },
};

function describeSynonyms(groups: readonly (readonly string[])[]): string {
  return groups.map((group, i) => `${i + 1}. ${group.join(' = ')}`).join('\n');
}

/** A 1-based position from a command's arguments. */
function position(arg: string | undefined, what: string): number {
  const value = Number(arg);
  if (!Number.isInteger(value) || value < 1) throw new CommandUsageError(`"${arg ?? ''}" is not a ${what}: give a whole number from 1.`);
  return value;
}

export const faqCommands: readonly Command[] = [add, importCommand, list, remove, exportFaq, clear, inbox, inboxAnswer, inboxLink, synonyms, synonymsAdd, synonymsRemove];
