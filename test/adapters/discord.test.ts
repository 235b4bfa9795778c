import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GatewayIntentBits, InteractionResponseType } from 'discord.js';
import { pino } from 'pino';
import { type ChatEngine, DiscordAdapter, type DiscordAdapterOptions } from '../../src/adapters/discord/discord-adapter.js';
import { DiscordAdapterError } from '../../src/adapters/discord/errors.js';
import { allCommands } from '../../src/core/commands/all-commands.js';
import type { IncomingMessage } from '../../src/core/message.js';
import { createScratchApp, type ScratchApp } from '../helpers/local-app.js';
import { type InteractionState, LoopbackDiscord, type StoredMessage, TOKEN } from '../helpers/loopback-discord.js';

const ALL_INTENTS = GatewayIntentBits.Guilds | GatewayIntentBits.GuildMessages | GatewayIntentBits.DirectMessages | GatewayIntentBits.MessageContent;
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
    assert.deepEqual(
      discord.commands.get(guild.id)?.map((command) => command.name),
      ['help', 'ask', 'forget', 'export', 'faq', 'model'],
    );
    await discord.waitFor(() => discord.heartbeats >= 2, 'two heartbeats', 3000);
  });

  it('/faq add by an admin adds the entry; by a member it is refused and the FAQ is unchanged', async () => {
    const { general } = discord.guilds[0];
    const added = discord.interact({ channelId: general.id, user: discord.user('ada'), admin: true, command: 'faq', subcommand: 'add', options: { question: HOURS_QUESTION, answer: HOURS_ANSWER, tags: 'hours support' } });
    assert.match(await interactionReply(discord, added), /^Added \S+: "What are the opening hours\?"$/u);
    const entries = await scratch.app.services.faqFor(faqScope).entries();
    assert.deepEqual(entries.map((entry) => [entry.question, entry.answer, entry.tags]), [[HOURS_QUESTION, HOURS_ANSWER, ['hours', 'support']]]);

    const refused = discord.interact({ channelId: general.id, user: discord.user('mallory'), command: 'faq', subcommand: 'add', options: { question: 'Is it free?', answer: 'Yes, always.' } });
    assert.match(await interactionReply(discord, refused), /^\/faq add is for admins only/u);
    assert.equal((await scratch.app.services.faqFor(faqScope).entries()).length, 1);
  });

  it('/faq import reads the attached file', async () => {
    const csv = 'question,answer\nHow do I reset my password?,Use the link on the sign-in page.\nWhere is the office?,At 1 Main Street.\n';
    const state = discord.interact({ channelId: discord.guilds[0].general.id, user: discord.user('ada'), admin: true, command: 'faq', subcommand: 'import', options: { file: { name: 'more.csv', bytes: new TextEncoder().encode(csv) } } });
    const reply = await interactionReply(discord, state);
    assert.match(reply, /^Imported more\.csv \(merge\):\n\+ 2 new/u);
    assert.equal((await scratch.app.services.faqFor(faqScope).entries()).length, 3);
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

describe('Discord adapter: an engine failure', () => {
  it('is logged, and the reply says so after what was already shown', async () => {
    const failing: ChatEngine = {
      async *handle() {
        yield 'Let me check.';
        throw new Error('the model worker died');
      },
    };
    const log = capturedLogger();
    const discord = await LoopbackDiscord.start();
    const adapter = await startAdapter(failing, discord, { logger: log.logger });
    try {
      const question = discord.sendMessage({ channelId: discord.guilds[0].general.id, author: discord.user('jo'), content: 'anything', mention: true });
      const reply = await discord.waitFor(() => discord.botMessages(question.channel_id).find((message) => message.content.includes('went wrong')), 'the failure in the reply');
      assert.equal(reply.content, 'Let me check.\nSorry, something went wrong while answering. Please try again.');
      assert.ok(log.lines.some((line) => line.includes('the model worker died')), 'the cause is logged');
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

describe('Discord adapter: sharding', () => {
  it("runs the shards Discord recommends ('auto'), each guild's events on its shard", async () => {
    const discord = await LoopbackDiscord.start({ guildCount: 2, recommendedShards: 2 });
    const adapter = await startAdapter(scratch.app.engine, discord, { shards: 'auto' });
    try {
      assert.deepEqual(discord.identifies.map((identify) => identify.shard).sort(), [[0, 2], [1, 2]]);
      for (const guild of discord.guilds) {
        const question = discord.sendMessage({ channelId: guild.general.id, author: discord.user('kim'), content: '/help', mention: true });
        assert.match((await replyTo(discord, question)).content, /^Ask me a question/u);
      }
    } finally {
      await adapter.stop();
      await discord.close();
    }
  });

  it('runs only the given shard ids of a count, for one of several instances', async () => {
    const discord = await LoopbackDiscord.start({ guildCount: 2, recommendedShards: 1 });
    const adapter = await startAdapter(scratch.app.engine, discord, { shards: { ids: [1], count: 2 } });
    try {
      assert.deepEqual(discord.identifies.map((identify) => identify.shard), [[1, 2]]);
    } finally {
      await adapter.stop();
      await discord.close();
    }
    assert.throws(
      () => new DiscordAdapter(scratch.app.engine, { token: TOKEN, commands: commandsOf(scratch.app.engine), logger: pino({ level: 'silent' }), shards: { ids: [2], count: 2 } }),
      (error: unknown) => error instanceof DiscordAdapterError && error.code === 'DISCORD_OPTIONS_INVALID',
    );
  });
});
