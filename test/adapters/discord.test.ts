import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GatewayIntentBits, InteractionResponseType } from 'discord.js';
import { pino } from 'pino';
import { DiscordAdapter, type DiscordAdapterOptions } from '../../src/adapters/discord/discord-adapter.js';
import { DiscordAdapterError } from '../../src/adapters/discord/errors.js';
import { slashCommandDefinitions } from '../../src/adapters/discord/slash-commands.js';
import type { ChatEngine } from '../../src/core/conversation/adapter.js';
import { allCommands } from '../../src/core/commands/all-commands.js';
import { SOMETHING_WENT_WRONG } from '../../src/core/conversation/error-reply.js';
import type { IncomingMessage } from '../../src/core/conversation/message.js';
import { StorageError } from '../../src/core/storage/storage-error.js';
import { createScratchApp, type ScratchApp } from '../helpers/local-app.js';
import { type InteractionState, LoopbackDiscord, type LoopbackUser, type StoredFile, type StoredMessage, TOKEN } from '../helpers/loopback-discord.js';
import { dataBin, exportedEntries, FILE_LINE, faqEntries, fileEngine } from '../helpers/reply-files.js';

const ALL_INTENTS =
  GatewayIntentBits.Guilds |
  GatewayIntentBits.GuildMessages |
  GatewayIntentBits.DirectMessages |
  GatewayIntentBits.MessageContent |
  GatewayIntentBits.GuildMessageReactions |
  GatewayIntentBits.DirectMessageReactions;
const HOURS_QUESTION = 'What are the opening hours?';
const HOURS_ANSWER = 'We are open from 9 to 5, Monday to Friday.';

/** A logger whose JSON lines the test reads. */
function capturedLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }), lines };
}

function commandsOf(engine: ChatEngine) {
  return allCommands((message) => engine.handle(message));
}

async function startAdapter(engine: ChatEngine, discord: LoopbackDiscord, options: Partial<DiscordAdapterOptions> = {}): Promise<DiscordAdapter> {
  const adapter = new DiscordAdapter(engine, { token: TOKEN, commands: commandsOf(engine), logger: pino({ level: 'silent' }), apiUrl: discord.apiUrl, ...options });
  await adapter.start();
  return adapter;
}

/** The bot's reply to `question`, once posted, and the channel's bot messages from then on. */
async function replyTo(discord: LoopbackDiscord, question: StoredMessage): Promise<StoredMessage> {
  return discord.waitFor(() => discord.botMessages(question.channel_id).find((message) => message.replyTo === question.id), `a reply to "${question.content}"`);
}

/** The interaction's reply once it says something, after checking it was deferred in time and then edited. */
async function interactionReply(discord: LoopbackDiscord, state: InteractionState): Promise<string> {
  const content = await discord.waitFor(() => state.original?.content, `a reply to interaction ${state.id}`);
  assert.equal(state.callback?.type, InteractionResponseType.DeferredChannelMessageWithSource, 'acknowledged with deferReply');
  assert.ok((state.callback?.at ?? Infinity) - state.dispatchedAt < 3000, 'acknowledged within 3 s');
  assert.ok((state.original?.edits ?? 0) >= 1, 'the deferred reply was edited');
  return content;
}

/** The files a bot message carries; undefined while it carries none. */
function filesOf(message: StoredMessage | null | undefined): StoredFile[] | undefined {
  return message?.files?.length ? message.files : undefined;
}

let scratch: ScratchApp;
before(async () => {
  scratch = await createScratchApp();
});
after(async () => {
  await scratch.close();
});

describe('Discord adapter: the real discord.js client against a loopback Discord, the real engine and model', () => {
  let discord: LoopbackDiscord;
  let adapter: DiscordAdapter;
  const faqScope: IncomingMessage = { platform: 'discord', scope: { workspace: 'dm', channel: 'x' }, user: { id: 'x', displayName: 'x' }, text: '', attachments: [], platformAdmin: false };

  before(async () => {
    discord = await LoopbackDiscord.start({ heartbeatIntervalMs: 200 });
    const guild = discord.guilds[0];
    adapter = await startAdapter(scratch.app.engine, discord, { guildIds: [guild.id], autoAnswerChannels: [guild.support.id] });
  });

  after(async () => {
    await adapter.stop();
    await discord.close();
  });

  it('identifies with only the intents it needs, keeps the heartbeat, and registers the slash commands in the guild', async () => {
    const guild = discord.guilds[0];
    assert.deepEqual(discord.identifies, [{ shard: [0, 1], intents: ALL_INTENTS }]);
    assert.equal(discord.callsTo('PUT', /^\/applications\/\d+\/guilds\/\d+\/commands$/u).length, 1);
    assert.equal(discord.callsTo('PUT', /^\/applications\/\d+\/commands$/u).length, 0, 'nothing global when guilds are configured');
    // Manage Server (bit 32) by default on the admin halves only; Discord sets it per top-level command.
    assert.deepEqual(
      discord.commands.get(guild.id)?.map((command) => [command.name, command.default_member_permissions]),
      [['help', null], ['ask', null], ['forget', null], ['export', null], ['faq', null], ['faq-admin', '32'], ['model', null], ['model-admin', '32']],
    );
    await discord.waitFor(() => discord.heartbeats >= 2, 'two heartbeats', 3000);
  });

  it('/faq add by an admin adds the entry; by a member it is refused and the FAQ is unchanged', async () => {
    const { general } = discord.guilds[0];
    const added = discord.interact({ channelId: general.id, user: discord.user('ada'), admin: true, command: 'faq-admin', subcommand: 'add', options: { question: HOURS_QUESTION, answer: HOURS_ANSWER, tags: 'hours support' } });
    assert.match(await interactionReply(discord, added), /^Added \S+: "What are the opening hours\?"$/u);
    const entries = await scratch.app.services.faqFor(faqScope).entries();
    assert.deepEqual(entries.map((entry) => [entry.question, entry.answer, entry.tags]), [[HOURS_QUESTION, HOURS_ANSWER, ['hours', 'support']]]);

    // Discord hides /faq-admin from members by default, but a guild can show it to anyone: the bot checks too.
    const refused = discord.interact({ channelId: general.id, user: discord.user('mallory'), command: 'faq-admin', subcommand: 'add', options: { question: 'Is it free?', answer: 'Yes, always.' } });
    assert.match(await interactionReply(discord, refused), /^\/faq add is for admins only/u);
    assert.equal((await scratch.app.services.faqFor(faqScope).entries()).length, 1);
  });

  it('/faq import reads the attached file', async () => {
    const csv = 'question,answer\nHow do I reset my password?,Use the link on the sign-in page.\nWhere is the office?,At 1 Main Street.\n';
    const state = discord.interact({ channelId: discord.guilds[0].general.id, user: discord.user('ada'), admin: true, command: 'faq-admin', subcommand: 'import', options: { file: { name: 'more.csv', bytes: new TextEncoder().encode(csv) } } });
    const reply = await interactionReply(discord, state);
    assert.match(reply, /^Imported more\.csv \(merge\):\n\+ 2 new/u);
    assert.equal((await scratch.app.services.faqFor(faqScope).entries()).length, 3);
  });

  it('/faq export attaches the FAQ as a file to the deferred reply, one that imports back as the same entries', async () => {
    const expected = await faqEntries(scratch.app.services.faqFor(faqScope));
    const state = discord.interact({ channelId: discord.guilds[0].general.id, user: discord.user('bob'), command: 'faq', subcommand: 'export', options: { format: 'json' } });
    const [file] = await discord.waitFor(() => filesOf(state.original), 'the exported file');
    assert.equal(file.name, 'faq.json');
    assert.deepEqual(exportedEntries(file.bytes, 'json'), expected);
    assert.equal(state.original?.content, `The FAQ (${expected.length} entries) as json.`);
    const upload = discord.calls.find((call) => call.files.length > 0 && call.path === `/webhooks/${discord.applicationId}/${state.token}/messages/@original`);
    assert.equal(upload?.method, 'PATCH', 'the deferred reply was edited with the file (multipart)');
  });

  it('/ask answers through the engine', async () => {
    const state = discord.interact({ channelId: discord.guilds[0].general.id, user: discord.user('bob'), command: 'ask', options: { question: HOURS_QUESTION } });
    assert.equal(await interactionReply(discord, state), HOURS_ANSWER);
  });

  it('answers a mention in its channel, replying to the message, after showing typing', async () => {
    const { general } = discord.guilds[0];
    const question = discord.sendMessage({ channelId: general.id, author: discord.user('carol'), content: HOURS_QUESTION, mention: true });
    const reply = await replyTo(discord, question);
    assert.equal(reply.content, HOURS_ANSWER);
    const typing = discord.callsTo('POST', new RegExp(`^/channels/${general.id}/typing$`, 'u')).at(-1);
    const posted = discord.callsTo('POST', new RegExp(`^/channels/${general.id}/messages$`, 'u')).at(-1);
    assert.ok(typing && posted && typing.at <= posted.at, 'typing is shown before the reply');
  });

  it('keeps to the thread it was asked in', async () => {
    const { general, thread } = discord.guilds[0];
    const before = discord.botMessages(general.id).length;
    const question = discord.sendMessage({ channelId: thread.id, author: discord.user('dave'), content: HOURS_QUESTION, mention: true });
    assert.equal((await replyTo(discord, question)).content, HOURS_ANSWER);
    assert.equal(discord.botMessages(general.id).length, before, 'nothing in the parent channel');
  });

  it('answers a direct message', async () => {
    const question = discord.sendDirectMessage(discord.user('erin'), HOURS_QUESTION);
    const reply = await discord.waitFor(() => discord.botMessages(question.channel_id)[0], 'a DM reply');
    assert.equal(reply.content, HOURS_ANSWER);
  });

  it('ignores an unmentioned message in a normal channel, and answers one in an auto-answer channel', async () => {
    const { general, support } = discord.guilds[0];
    const sentAt = Date.now();
    discord.sendMessage({ channelId: general.id, author: discord.user('frank'), content: HOURS_QUESTION });
    const answered = discord.sendMessage({ channelId: support.id, author: discord.user('frank'), content: HOURS_QUESTION });
    // Events are handled in order: by the time the second is answered, the first was passed over.
    assert.equal((await replyTo(discord, answered)).content, HOURS_ANSWER);
    assert.deepEqual(discord.callsTo('POST', new RegExp(`^/channels/${general.id}/`, 'u')).filter((call) => call.at >= sentAt), [], 'no typing, no reply in the normal channel');
  });

  it("takes a command typed after a mention, with its attached file, as an admin's when the member has Manage Server", async () => {
    const { general } = discord.guilds[0];
    const byAdmin = discord.sendMessage({ channelId: general.id, author: discord.user('hal'), admin: true, content: '/faq inbox', mention: true });
    assert.doesNotMatch((await replyTo(discord, byAdmin)).content, /admins only/u);
    const byMember = discord.sendMessage({ channelId: general.id, author: discord.user('ike'), content: '/faq inbox', mention: true });
    assert.match((await replyTo(discord, byMember)).content, /^\/faq inbox is for admins only/u);
    const file = { name: 'typed.csv', bytes: new TextEncoder().encode('question,answer\nIs there a phone line?,No: write to us here.\n') };
    const withFile = discord.sendMessage({ channelId: general.id, author: discord.user('hal'), admin: true, content: '/faq import', mention: true, attachments: [file] });
    assert.match((await replyTo(discord, withFile)).content, /^Imported typed\.csv \(merge\):\n\+ 1 new/u);
  });

  it('replies to "faq export csv" typed after a mention with the FAQ attached as faq.csv', async () => {
    const expected = await faqEntries(scratch.app.services.faqFor(faqScope));
    const question = discord.sendMessage({ channelId: discord.guilds[0].general.id, author: discord.user('carol'), content: '/faq export csv', mention: true });
    const reply = await replyTo(discord, question);
    const files = filesOf(reply) ?? [];
    assert.deepEqual(files.map((file) => file.name), ['faq.csv']);
    assert.deepEqual(exportedEntries(files[0].bytes, 'csv'), expected);
  });

  it('splits a long answer into messages of at most 2000 characters, in a channel and in an interaction reply', async () => {
    const paragraphs = Array.from({ length: 12 }, (_, i) => `Step ${i + 1}. ${'Open the settings page and check the values shown there. '.repeat(6).trim()}`);
    const longAnswer = paragraphs.join('\n\n');
    await scratch.app.services.faqFor(faqScope).add('How do I configure everything?', longAnswer);
    const question = discord.sendMessage({ channelId: discord.guilds[0].general.id, author: discord.user('gina'), content: 'How do I configure everything?', mention: true });
    const first = await replyTo(discord, question);
    const messages = await discord.waitFor(() => {
      const all = discord.botMessages(question.channel_id);
      const from = all.indexOf(first);
      const reply = all.slice(from);
      return reply.map((message) => message.content).join('\n\n') === longAnswer && reply;
    }, 'the whole answer');
    assert.ok(messages.length >= 3 && messages.every((message) => message.content.length <= 2000), messages.map((message) => message.content.length).join(', '));

    const state = discord.interact({ channelId: discord.guilds[0].general.id, user: discord.user('gina'), command: 'ask', options: { question: 'How do I configure everything?' } });
    await interactionReply(discord, state);
    const texts = await discord.waitFor(() => {
      const all = [state.original, ...state.followups].map((message) => message?.content ?? '');
      return all.join('\n\n') === longAnswer && all;
    }, 'the whole answer in the reply and its follow-ups');
    assert.ok(texts.length >= 3 && texts.every((text) => text.length <= 2000));
  });

  it('does not register the commands again on a restart when they are unchanged, and does when they changed', async () => {
    const guild = discord.guilds[0];
    const puts = () => discord.callsTo('PUT', /^\/applications\/\d+\/guilds\/\d+\/commands$/u).length;
    await adapter.stop();
    adapter = await startAdapter(scratch.app.engine, discord, { guildIds: [guild.id], autoAnswerChannels: [guild.support.id] });
    assert.equal(puts(), 1);
    assert.equal(discord.callsTo('GET', /^\/applications\/\d+\/guilds\/\d+\/commands$/u).length, 2, 'compared with what Discord has');
    await adapter.stop();
    const fewer = commandsOf(scratch.app.engine).filter((command) => command.words.join(' ') !== 'model eval');
    adapter = await startAdapter(scratch.app.engine, discord, { guildIds: [guild.id], commands: fewer });
    assert.equal(puts(), 2);
    await adapter.stop();
    const versionsForAdmins = commandsOf(scratch.app.engine).map((command) => (command.words.join(' ') === 'model versions' ? { ...command, admin: true } : command));
    adapter = await startAdapter(scratch.app.engine, discord, { guildIds: [guild.id], commands: versionsForAdmins });
    assert.equal(puts(), 3, 'a command that became admin-only moves to /model-admin');
    const modelAdmin = discord.commands.get(guild.id)?.find((command) => command.name === 'model-admin')?.options as { name: string }[] | undefined;
    assert.deepEqual(modelAdmin?.map((option) => option.name), ['finetune', 'cancel', 'versions', 'use', 'eval']);
  });
});

/** Streams `pieces`, one every `everyMs`, as a slow model would: what is tested is the adapter's pacing. */
function slowEngine(pieces: readonly string[], everyMs: number): ChatEngine {
  return {
    async *handle() {
      for (const piece of pieces) {
        await new Promise((resolve) => setTimeout(resolve, everyMs));
        yield piece;
      }
    },
  };
}

describe('Discord adapter: a slow, long answer', () => {
  it('is posted at once, edited at most once a second, and continued in new messages past 2000 characters', async () => {
    const pieces = Array.from({ length: 40 }, (_, i) => `Sentence ${i + 1} of a long streamed answer, still going on. `);
    const discord = await LoopbackDiscord.start();
    const adapter = await startAdapter(slowEngine(pieces, 70), discord);
    try {
      const question = discord.sendMessage({ channelId: discord.guilds[0].general.id, author: discord.user('hank'), content: 'tell me everything', mention: true });
      const first = await replyTo(discord, question);
      assert.ok(first.createdAt - question.createdAt < 800, `the first text shows at once (after ${first.createdAt - question.createdAt} ms)`);
      const whole = pieces.join('').trim();
      const messages = await discord.waitFor(() => {
        const reply = discord.botMessages(question.channel_id);
        return reply.map((message) => message.content).join(' ') === whole && reply;
      }, 'the whole answer');
      assert.ok(messages.length >= 2 && messages.every((message) => message.content.length <= 2000), messages.map((message) => message.content.length).join(', '));
      assert.ok(first.edits >= 2, `the first message grew by edits (${first.edits})`);
      for (const message of messages) {
        const times = [message.createdAt, ...message.editedAt];
        const gaps = times.slice(1).map((time, i) => time - times[i]);
        assert.ok(gaps.every((gap) => gap >= 900), `edits ${gaps.join(', ')} ms apart`);
      }
      assert.ok(discord.callsTo('POST', /\/typing$/u).length >= 1, 'typing was shown');
    } finally {
      await adapter.stop();
      await discord.close();
    }
  });
});

describe('Discord adapter: files over the size limit, on a server that takes files up to 100 bytes', () => {
  let discord: LoopbackDiscord;
  const uploads = () => discord.calls.filter((call) => call.files.length > 0);

  before(async () => {
    discord = await LoopbackDiscord.start({ attachmentSizeLimit: 100 });
  });
  after(async () => {
    await discord.close();
  });

  it('follows the text of an interaction reply with the file, or with a line that says it is over the limit Discord named', async () => {
    const adapter = await startAdapter(fileEngine, discord);
    try {
      const { general } = discord.guilds[0];
      const small = discord.interact({ channelId: general.id, user: discord.user('mo'), command: 'ask', options: { question: 'small' } });
      const [attached] = await discord.waitFor(() => filesOf(small.followups[0]), 'the file in a follow-up');
      assert.deepEqual([small.original?.content, attached.name, attached.bytes], [FILE_LINE, 'data.bin', dataBin(false)]);

      const before = uploads().length;
      const big = discord.interact({ channelId: general.id, user: discord.user('mo'), command: 'ask', options: { question: 'big' } });
      const note = await discord.waitFor(() => big.followups[0]?.content, 'the note in a follow-up');
      assert.equal(big.original?.content, FILE_LINE);
      assert.equal(note, 'I cannot send data.bin here: it is 200 B, and Discord takes files up to 100 B.');
      assert.equal(uploads().length, before, 'no upload was tried');
    } finally {
      await adapter.stop();
    }
  });

  it("tells a message's author when the file is over the adapter's limit, without trying the upload", async () => {
    const adapter = await startAdapter(fileEngine, discord, { maxUploadBytes: 64 });
    try {
      const before = uploads().length;
      const question = discord.sendMessage({ channelId: discord.guilds[0].general.id, author: discord.user('ned'), content: 'send the big one', mention: true });
      const reply = await replyTo(discord, question);
      const note = await discord.waitFor(() => discord.botMessages(question.channel_id).find((message) => message.createdAt >= reply.createdAt && message !== reply), 'the note');
      assert.deepEqual([reply.content, note.content], [FILE_LINE, 'I cannot send data.bin here: it is 200 B, and Discord takes files up to 64 B.']);
      assert.equal(uploads().length, before);
    } finally {
      await adapter.stop();
    }
  });

  it('says so when Discord refuses the upload, and the text of the reply still arrives', async () => {
    const log = capturedLogger();
    const adapter = await startAdapter(fileEngine, discord, { logger: log.logger });
    try {
      const question = discord.sendMessage({ channelId: discord.guilds[0].general.id, author: discord.user('ola'), content: 'send the big one', mention: true });
      const reply = await replyTo(discord, question);
      const note = await discord.waitFor(() => discord.botMessages(question.channel_id).find((message) => message.createdAt >= reply.createdAt && message !== reply), 'the note');
      assert.deepEqual([reply.content, note.content], [FILE_LINE, 'I could not send data.bin: Discord refused the upload (Request entity too large).']);
      assert.ok(uploads().some((call) => call.files[0]?.bytes.length === 200), 'the upload was tried');
      const replies = discord.botMessages(question.channel_id).filter((message) => message.createdAt >= question.createdAt);
      assert.ok(replies.every((message) => filesOf(message) === undefined), 'no message carries the file');
      assert.ok(log.lines.some((line) => line.includes('Discord refused a file upload')));
    } finally {
      await adapter.stop();
    }
  });
});

describe('Discord adapter: an engine failure', () => {
  it('is logged, and the reply says so after what was already shown: a coded error in its own words, a bug generically', async () => {
    const failing: ChatEngine = {
      async *handle(message) {
        yield 'Let me check.';
        if (message.text === 'coded') throw new StorageError('STORAGE_UNAVAILABLE', 'cannot reach Redis storage redis://127.0.0.1:1');
        throw new Error('the model worker died');
      },
    };
    const log = capturedLogger();
    const discord = await LoopbackDiscord.start();
    const adapter = await startAdapter(failing, discord, { logger: log.logger });
    try {
      const question = discord.sendMessage({ channelId: discord.guilds[0].general.id, author: discord.user('jo'), content: 'anything', mention: true });
      const reply = await discord.waitFor(() => discord.botMessages(question.channel_id).find((message) => message.content.includes('went wrong')), 'the failure in the reply');
      assert.equal(reply.content, `Let me check.\n${SOMETHING_WENT_WRONG}`);
      assert.ok(log.lines.some((line) => line.includes('the model worker died')), 'the cause is logged');
      const coded = discord.sendMessage({ channelId: discord.guilds[0].general.id, author: discord.user('jo'), content: 'coded', mention: true });
      assert.equal((await replyTo(discord, coded)).content, 'Let me check.\nCould not do that: cannot reach Redis storage redis://127.0.0.1:1');
    } finally {
      await adapter.stop();
      await discord.close();
    }
  });
});

describe('Discord adapter: a reply that outlives its interaction', () => {
  it('goes on in a channel message once the interaction token is about to expire', async () => {
    const pieces = Array.from({ length: 20 }, (_, i) => `Progress report ${i + 1}.\n`);
    const discord = await LoopbackDiscord.start({ interactionTokenMs: 1500 });
    const adapter = await startAdapter(slowEngine(pieces, 100), discord, { interactionTokenMs: 600 });
    try {
      const { general } = discord.guilds[0];
      const state = discord.interact({ channelId: general.id, user: discord.user('lee'), command: 'model', subcommand: 'status' });
      const whole = pieces.join('').trim();
      const moved = await discord.waitFor(() => discord.botMessages(general.id).find((message) => !message.webhookToken && message.content === whole), 'the reply continued in the channel');
      assert.ok(moved.createdAt - state.dispatchedAt >= 600);
      assert.ok(whole.startsWith(state.original?.content ?? '') && (state.original?.content ?? '').length > 0, 'the interaction reply showed the start');
      const webhookCalls = discord.calls.filter((call) => call.path.startsWith('/webhooks/'));
      assert.ok(webhookCalls.every((call) => call.at - state.dispatchedAt <= 1500), 'no webhook call after the token expired');
    } finally {
      await adapter.stop();
      await discord.close();
    }
  });
});

describe('Discord adapter: Discord refuses the Message Content intent', () => {
  let discord: LoopbackDiscord;
  let adapter: DiscordAdapter;
  const log = capturedLogger();

  before(async () => {
    discord = await LoopbackDiscord.start({ messageContentAllowed: false });
    adapter = await startAdapter(scratch.app.engine, discord, { logger: log.logger, autoAnswerChannels: [discord.guilds[0].support.id] });
  });

  after(async () => {
    await adapter.stop();
    await discord.close();
  });

  it('logs one clear line and reconnects without it', () => {
    const lines = log.lines.filter((line) => /4014|intent/iu.test(line));
    assert.equal(lines.length, 1, lines.join(''));
    assert.match(JSON.parse(lines[0]).msg, /refused the privileged Message Content intent .*slash commands, mentions and DMs work/u);
    assert.deepEqual(
      discord.identifies.map((identify) => identify.intents),
      [ALL_INTENTS, ALL_INTENTS & ~GatewayIntentBits.MessageContent],
    );
    assert.equal(adapter.readsAllMessages, false);
  });

  it('registers the commands globally when no guild is configured, and serves them', async () => {
    assert.equal(discord.callsTo('PUT', /^\/applications\/\d+\/commands$/u).length, 1);
    const state = discord.interact({ channelId: discord.guilds[0].general.id, user: discord.user('ivy'), command: 'help' });
    assert.match(await interactionReply(discord, state), /^Ask me a question, or use a command:\n\/help/u);
  });

  it('still answers mentions, and passes over the blanked messages of an auto-answer channel', async () => {
    const { support } = discord.guilds[0];
    const blank = discord.sendMessage({ channelId: support.id, author: discord.user('jack'), content: 'What are the opening hours?' });
    const mention = discord.sendMessage({ channelId: support.id, author: discord.user('jack'), content: '/help', mention: true });
    assert.match((await replyTo(discord, mention)).content, /^Ask me a question/u);
    assert.equal(discord.botMessages(support.id).filter((message) => message.replyTo === blank.id).length, 0);
  });
});

describe('Discord adapter: Discord refuses the slash commands in some guilds', () => {
  let discord: LoopbackDiscord;
  let adapter: DiscordAdapter;
  const log = capturedLogger();
  /** A guild the bot is not in (it was removed, or never added). */
  const ELSEWHERE = '1234567890123456789';

  before(async () => {
    discord = await LoopbackDiscord.start({ guildCount: 2 });
    adapter = await startAdapter(scratch.app.engine, discord, { logger: log.logger, guildIds: [ELSEWHERE, discord.guilds[0].id, discord.guilds[1].id] });
  });

  after(async () => {
    await adapter.stop();
    await discord.close();
  });

  const warnings = () => log.lines.map((line) => JSON.parse(line) as { level: number; msg: string; scope?: string; discordCode?: number }).filter((line) => line.level === 40);

  it('logs one line for a guild the bot is not in (50001), registers in the others, and serves', async () => {
    const refused = warnings().filter((line) => line.discordCode === 50001);
    assert.equal(refused.length, 1, JSON.stringify(refused));
    assert.equal(refused[0].scope, `guild ${ELSEWHERE}`);
    assert.match(refused[0].msg, new RegExp(`^no slash commands in guild ${ELSEWHERE}: Discord refused them \\(50001 Missing Access\\); the bot is not in that guild.*take ${ELSEWHERE} out of discord\\.guildIds \\(TUNEBOT_DISCORD_GUILD_IDS\\)`, 'u'));
    const definitions = slashCommandDefinitions(commandsOf(scratch.app.engine));
    for (const guild of discord.guilds) assert.deepEqual(discord.commands.get(guild.id)?.map((command) => command.name), definitions.map((definition) => definition.name), `commands in ${guild.id}`);
    const state = discord.interact({ channelId: discord.guilds[1].general.id, user: discord.user('kai'), command: 'help' });
    assert.match(await interactionReply(discord, state), /^Ask me a question, or use a command:/u);
  });
});

describe('Discord adapter: a Discord-compatible server that refuses a field of the command definitions (50035)', () => {
  let discord: LoopbackDiscord;
  let adapter: DiscordAdapter;
  const log = capturedLogger();

  before(async () => {
    discord = await LoopbackDiscord.start({ guildCount: 2, refusedCommandFields: ['contexts'] });
    adapter = await startAdapter(scratch.app.engine, discord, { logger: log.logger, guildIds: discord.guilds.map((guild) => guild.id) });
  });

  after(async () => {
    await adapter.stop();
    await discord.close();
  });

  it('logs one line per guild naming the refused field, and answers mentions without slash commands', async () => {
    const lines = log.lines.map((line) => JSON.parse(line) as { level: number; msg: string; scope?: string; discordCode?: number }).filter((line) => line.discordCode !== undefined);
    assert.deepEqual(lines.map((line) => [line.level, line.scope, line.discordCode]), discord.guilds.map((guild) => [40, `guild ${guild.id}`, 50035]));
    for (const line of lines) {
      assert.doesNotMatch(line.msg, /\n/u, 'one line');
      assert.match(line.msg, /Discord refused them \(50035 Invalid Form Body; 0\.contexts\[UNKNOWN_FIELD\]: This field is not supported\.;? .*\); the server does not take a field/u);
    }
    assert.equal(discord.commands.size, 0, 'no guild has commands');
    const { general } = discord.guilds[0];
    const question = discord.sendMessage({ channelId: general.id, author: discord.user('lou'), content: '/help', mention: true });
    assert.match((await replyTo(discord, question)).content, /^Ask me a question/u);
  });
});

/** tunebot_feedback_total{kind} as /metrics shows it. */
async function feedbackCounted(kind: 'up' | 'down'): Promise<number> {
  const found = new RegExp(`^tunebot_feedback_total\\{kind="${kind}"\\} (\\d+)$`, 'mu').exec(await scratch.app.services.metrics.render());
  assert.ok(found, `tunebot_feedback_total{kind="${kind}"} is in /metrics`);
  return Number(found[1]);
}

/** Waits until /metrics counts `count` reactions of `kind`. */
async function untilCounted(kind: 'up' | 'down', count: number, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await feedbackCounted(kind)) !== count) {
    if (Date.now() > deadline) assert.fail(`timed out after 10 s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('Discord adapter: 👍 and 👎 on answers', () => {
  const CANCEL_QUESTION = 'How do I cancel my subscription?';
  const CANCEL_ANSWER = 'Open Billing in your account and press Cancel.';
  let discord: LoopbackDiscord;
  let adapter: DiscordAdapter;
  let uma: LoopbackUser;
  let entryId: string;
  let question: StoredMessage;
  let answer: StoredMessage;
  const start = () => startAdapter(scratch.app.engine, discord, { guildIds: [discord.guilds[0].id], feedback: scratch.app.services.feedback });
  /** The admins' inbox, as /faq inbox lists it to an admin on Discord; and the bot's message that lists it. */
  const inboxListing = async () => {
    const asked = discord.sendMessage({ channelId: discord.guilds[0].general.id, author: discord.user('root'), admin: true, content: '/faq inbox', mention: true });
    return replyTo(discord, asked);
  };

  before(async () => {
    discord = await LoopbackDiscord.start();
    adapter = await start();
    uma = discord.user('uma');
    const faq = scratch.app.services.faqFor({ platform: 'discord', scope: { workspace: discord.guilds[0].id, channel: 'x' }, user: { id: 'x', displayName: 'x' }, text: '', attachments: [], platformAdmin: true });
    entryId = (await faq.add(CANCEL_QUESTION, CANCEL_ANSWER)).id;
  });

  after(async () => {
    await adapter.stop();
    await discord.close();
  });

  it("a member's 👎 on the answer puts the question in the admins' inbox, marked as a thumbs-down, and is counted", async () => {
    question = discord.sendMessage({ channelId: discord.guilds[0].general.id, author: uma, content: CANCEL_QUESTION, mention: true });
    answer = await replyTo(discord, question);
    assert.equal(answer.content, CANCEL_ANSWER);
    assert.doesNotMatch((await inboxListing()).content, /How do I cancel/u, 'an FAQ answer is not in the inbox by itself');
    const downs = await feedbackCounted('down');
    assert.equal(discord.react({ message: answer, user: uma, emoji: '👎' }), true);
    await untilCounted('down', downs + 1, 'the thumbs-down counted');
    const today = new Date().toISOString().slice(0, 10);
    assert.match((await inboxListing()).content, new RegExp(`^\\d+\\. How do I cancel my subscription\\? \\(thumbs-down on my answer from ${entryId} ${today}\\)$`, 'mu'));
  });

  it("counts a 👍, and a user's 👎 once when taken back and given again; ignores the bot's reactions, other emoji and other messages", async () => {
    const [ups, downs] = [await feedbackCounted('up'), await feedbackCounted('down')];
    const vic = discord.user('vic');
    discord.react({ message: answer, user: vic, emoji: '👍' });
    await untilCounted('up', ups + 1, 'the thumbs-up counted');

    const listing = await inboxListing();
    assert.equal(discord.react({ message: answer, user: uma, emoji: '👎', remove: true }), true);
    assert.equal(discord.react({ message: answer, user: uma, emoji: '👎' }), true);
    discord.react({ message: question, user: vic, emoji: '👎' });
    discord.react({ message: listing, user: vic, emoji: '👎' });
    discord.react({ message: answer, user: discord.bot, emoji: '👎' });
    discord.react({ message: answer, user: vic, emoji: '😀' });
    // Reactions are handled in the order they come: once the last is counted, all of these were seen.
    discord.react({ message: answer, user: discord.user('wes'), emoji: '👎🏽' });
    await untilCounted('down', downs + 1, "wes's thumbs-down (with a skin tone) counted");
    assert.deepEqual([await feedbackCounted('up'), await feedbackCounted('down')], [ups + 1, downs + 1], 'nothing else was counted');
    assert.deepEqual((await scratch.app.services.feedback.tallies('discord', discord.guilds[0].id)).get(entryId), { up: 1, down: 2 }, "uma's 👎 stands again, beside wes's");
  });

  it('takes back a vote when the reaction is removed, and counts reactions on answers posted before a restart (no longer cached) and in DMs', async () => {
    const ups = await feedbackCounted('up');
    await adapter.stop();
    adapter = await start();
    discord.react({ message: answer, user: uma, emoji: '👎', remove: true });
    discord.react({ message: answer, user: discord.user('xia'), emoji: '👍' });
    await untilCounted('up', ups + 1, 'the thumbs-up on an uncached message counted');
    assert.deepEqual((await scratch.app.services.feedback.tallies('discord', discord.guilds[0].id)).get(entryId), { up: 2, down: 1 });

    const downs = await feedbackCounted('down');
    const yan = discord.user('yan');
    const asked = discord.sendDirectMessage(yan, CANCEL_QUESTION);
    const reply = await discord.waitFor(() => discord.botMessages(asked.channel_id)[0], 'the DM answer');
    discord.react({ message: reply, user: yan, emoji: '👎' });
    await untilCounted('down', downs + 1, 'the thumbs-down in a DM counted');
  });

  it('counts a 👎 on the first part of a long answer given while the other parts are still being posted', async () => {
    const longAnswer = Array.from({ length: 3 }, (_, i) => `Part ${i + 1}. ${'Read the whole privacy policy on the website before you agree to it. '.repeat(22).trim()}`).join('\n\n');
    await scratch.app.services.faqFor({ platform: 'discord', scope: { workspace: 'dm', channel: 'x' }, user: { id: 'x', displayName: 'x' }, text: '', attachments: [], platformAdmin: true }).add('What does the privacy policy say?', longAnswer);
    const slow = await LoopbackDiscord.start({ postDelayMs: 300 });
    const slowAdapter = await startAdapter(scratch.app.engine, slow, { feedback: scratch.app.services.feedback });
    try {
      const downs = await feedbackCounted('down');
      const zed = slow.user('zed');
      const asked = slow.sendMessage({ channelId: slow.guilds[0].general.id, author: zed, content: 'What does the privacy policy say?', mention: true });
      const first = await replyTo(slow, asked);
      slow.react({ message: first, user: zed, emoji: '👎' });
      const partsThen = slow.botMessages(asked.channel_id).length;
      await untilCounted('down', downs + 1, 'the thumbs-down counted');
      const parts = slow.botMessages(asked.channel_id).length;
      assert.ok(parts >= 3 && partsThen < parts, `the answer was still being posted (${partsThen} of ${parts} parts) when the reaction came`);
    } finally {
      await slowAdapter.stop();
      await slow.close();
    }
  });

  it('refuses feedback for an engine that does not tell which questions it answered', () => {
    assert.throws(
      () => new DiscordAdapter(slowEngine(['hi'], 1), { token: TOKEN, commands: [], logger: pino({ level: 'silent' }), feedback: scratch.app.services.feedback }),
      (error: unknown) => error instanceof DiscordAdapterError && error.code === 'DISCORD_OPTIONS_INVALID' && /onAnswer/u.test(error.message),
    );
  });
});
