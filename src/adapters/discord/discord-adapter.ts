import {
  type AttachmentPayload,
  type Attachment as DiscordAttachment,
  type Channel,
  type ChatInputCommandInteraction,
  Client,
  type ClientOptions,
  Events,
  GatewayIntentBits,
  type Interaction,
  type Message,
  type MessageReaction,
  type PartialMessageReaction,
  type PartialUser,
  Partials,
  PermissionFlagsBits,
  type User,
} from 'discord.js';
import { type Adapter, type ChatEngine, tellsAnswers } from '../../core/conversation/adapter.js';
import type { TunebotConfig } from '../../core/config.js';
import { errorReply, SOMETHING_WENT_WRONG } from '../../core/conversation/error-reply.js';
import type { AnswerFeedback, Vote } from '../../core/conversation/feedback.js';
import type { Attachment, IncomingMessage, Scope } from '../../core/conversation/message.js';
import { fileRefusedNote, fileTooLargeNote, isReplyFile, type ReplyFile } from '../../core/conversation/reply.js';
import type { Logger } from '../../log.js';
import { ReactionFeedback } from '../reaction-feedback.js';
import { EditStream, type EditableMessages } from '../edit-stream.js';
import type { MessageFormat } from '../split-message.js';
import { DiscordAdapterError } from './errors.js';
import { attachmentOptionNames, type CommandInfo, commandLine, commandOfInteraction, type OptionValue, registerSlashCommands, slashCommandDefinitions } from './slash-commands.js';

/**
 * Sharding: leave `shards` out for one connection (or the shards a discord.js ShardingManager
 * hands this process); 'auto' runs every shard Discord recommends in this process; ids and a
 * count run some of them, for several instances that split the guilds between them.
 */
export type ShardSetting = 'auto' | { readonly ids: readonly number[]; readonly count: number };

export interface DiscordAdapterOptions {
  readonly token: string;
  /** The engine's command list, for the slash commands. */
  readonly commands: readonly CommandInfo[];
  /** Guilds to register the slash commands in (at once); none registers them globally. */
  readonly guildIds?: readonly string[];
  /** Channels (and their threads) where every message is answered, not only mentions. */
  readonly autoAnswerChannels?: readonly string[];
  readonly shards?: ShardSetting;
  readonly logger: Logger;
  /** The REST API base (discord.js's rest.api), e.g. a loopback server's in tests. */
  readonly apiUrl?: string;
  /** The least time between two rounds of edits to a streaming reply. */
  readonly editIntervalMs?: number;
  /** How long an interaction's reply can be edited: 15 minutes on Discord, less a margin. */
  readonly interactionTokenMs?: number;
  /**
   * The largest file a reply to a message attaches (bytes): 8 MiB, which every server takes
   * (boosted servers take more: 25 MiB and up). An interaction's reply uses the limit Discord
   * names in the interaction instead.
   */
  readonly maxUploadBytes?: number;
  /** Where 👍 and 👎 on answers go; needs an engine with onAnswer. Left out: reactions are ignored. */
  readonly feedback?: AnswerFeedback;
}

/** The adapter's options from tunebot's configuration; null when no token is set (Discord is off). */
export function discordAdapterOptions(config: TunebotConfig['discord'], commands: readonly CommandInfo[], logger: Logger): DiscordAdapterOptions | null {
  if (!config.token) return null;
  return {
    token: config.token,
    commands,
    guildIds: config.guildIds,
    autoAnswerChannels: config.channels,
    shards: !config.sharding ? undefined : config.shardIds.length === 0 ? 'auto' : { ids: config.shardIds, count: config.shardCount },
    logger,
    apiUrl: config.apiUrl ?? undefined,
  };
}

/** Discord messages: 2,000 characters of content; code fences are lines of their own, with a language after the opening one. */
export const DISCORD_MESSAGES: MessageFormat = { limit: 2000, fences: 'line', entities: false };

/** Only what the adapter reads: guilds and their channels, messages in guilds and DMs, their text, and reactions on them. */
export const DISCORD_INTENTS = [
  GatewayIntentBits.Guilds,
  GatewayIntentBits.GuildMessages,
  GatewayIntentBits.DirectMessages,
  GatewayIntentBits.MessageContent,
  GatewayIntentBits.GuildMessageReactions,
  GatewayIntentBits.DirectMessageReactions,
] as const;
const DISALLOWED_INTENTS_CLOSE_CODE = 4014;
/** Discord shows typing for 10 s after each request. */
const TYPING_REFRESH_MS = 8000;
/** Discord rate-limits edits: a round of them at most once a second. */
const EDIT_INTERVAL_MS = 1000;
const MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024;
const INTERACTION_TOKEN_MS = 14 * 60_000;
const DEFAULT_UPLOAD_BYTES = 8 * 1024 * 1024;
/** Skin-tone modifiers: 👍🏽 is a 👍. */
const SKIN_TONES = /[\u{1F3FB}-\u{1F3FF}]/gu;
const VOTES_BY_EMOJI: ReadonlyMap<string, Vote> = new Map([
  ['👍', 'up'],
  ['👎', 'down'],
]);

/**
 * tunebot on Discord, through discord.js: it answers when mentioned, in direct messages, and
 * every message in the auto-answer channels; replies stay in the channel or thread asked in,
 * show typing while the engine works, and stream by editing (a round of edits at most once a
 * second), split at 2000 characters. The engine's commands are slash commands, registered per
 * guild or globally and only when they changed; each interaction is deferred at once (Discord
 * allows 3 s) and its reply edited as the command reports. Files a reply carries follow its
 * text as attachments, each in a message of its own; one Discord will not take is replaced by
 * a line that says why. Without the privileged Message
 * Content intent (the gateway closes with 4014) it logs one line and reconnects without it:
 * slash commands, mentions and DMs still work, auto-answer channels do not. With feedback on,
 * a 👍 or 👎 on an answer it posted goes to the feedback record (a 👎 puts the question in the
 * admins' inbox); the bot's own reactions and reactions on other messages are ignored.
 */
export class DiscordAdapter implements Adapter {
  readonly name = 'Discord';
  private client: Client<true> | null = null;
  private messageContent = true;
  private readonly autoAnswer: ReadonlySet<string>;
  private reactions: ReactionFeedback | null = null;

  constructor(
    private readonly engine: ChatEngine,
    private readonly options: DiscordAdapterOptions,
  ) {
    this.autoAnswer = new Set(options.autoAnswerChannels ?? []);
    const shards = options.shards;
    if (shards && shards !== 'auto') {
      // A shard run twice would answer its guilds twice.
      const valid = shards.ids.length > 0 && new Set(shards.ids).size === shards.ids.length && shards.ids.every((id) => Number.isInteger(id) && id >= 0 && id < shards.count);
      if (!valid) throw new DiscordAdapterError('DISCORD_OPTIONS_INVALID', `shard ids must be different whole numbers from 0 to ${shards.count - 1} (the shard count less one), got [${shards.ids.join(', ')}]`);
    }
    // Built now so that a command list Discord cannot take fails before connecting.
    slashCommandDefinitions(options.commands);
    if (options.feedback && !tellsAnswers(engine)) throw new DiscordAdapterError('DISCORD_OPTIONS_INVALID', 'feedback reactions need an engine that tells which questions it answered (onAnswer)');
  }

  /** False once Discord refused the Message Content intent: auto-answer channels are then off. */
  get readsAllMessages(): boolean {
    return this.messageContent;
  }

  /** Connects (every shard ready, guilds loaded), then registers the slash commands where they changed. */
  async start(): Promise<void> {
    const { logger, feedback } = this.options;
    if (feedback && tellsAnswers(this.engine)) this.reactions = new ReactionFeedback(this.engine, feedback, logger);
    try {
      await this.connectAndRegister();
    } catch (error) {
      this.reactions?.close();
      this.reactions = null;
      throw error;
    }
  }

  private async connectAndRegister(): Promise<void> {
    const { logger } = this.options;
    try {
      this.client = await this.connect(true);
    } catch (error) {
      if (!(error instanceof IntentsRefused)) throw error;
      logger.warn(
        { closeCode: DISALLOWED_INTENTS_CLOSE_CODE },
        'Discord refused the privileged Message Content intent (gateway close code 4014); reconnecting without it: slash commands, mentions and DMs work, auto-answer channels do not. Turn on "Message Content Intent" under Bot in the Discord developer portal to read every message.',
      );
      this.messageContent = false;
      this.client = await this.connect(false);
    }
    const client = this.client;
    logger.info({ user: client.user.tag, guilds: client.guilds.cache.size, shards: client.ws.shards.size, messageContent: this.messageContent }, 'connected to Discord');
    await registerSlashCommands(client.application.commands, slashCommandDefinitions(this.options.commands), this.options.guildIds ?? [], logger);
  }

  async stop(): Promise<void> {
    await this.client?.destroy();
    this.client = null;
    this.reactions?.close();
    this.reactions = null;
  }

  private async connect(messageContent: boolean): Promise<Client<true>> {
    const { logger, shards } = this.options;
    const options: ClientOptions = {
      intents: DISCORD_INTENTS.filter((intent) => messageContent || intent !== GatewayIntentBits.MessageContent),
      // DM channels are not cached in advance: without this, discord.js drops direct messages. The
      // others let reactions through on messages posted before a restart, which are not cached.
      partials: [Partials.Channel, Partials.Message, Partials.Reaction, Partials.User],
      allowedMentions: { parse: [], repliedUser: false },
      ...(this.options.apiUrl ? { rest: { api: this.options.apiUrl } } : {}),
      ...(shards === 'auto' ? { shards: 'auto' } : shards ? { shards: [...shards.ids], shardCount: shards.count } : {}),
    };
    const client = new Client(options);
    let refused = false;
    client.on(Events.ShardDisconnect, (event, shardId) => {
      if (event.code === DISALLOWED_INTENTS_CLOSE_CODE) refused = true;
      else logger.warn({ shardId, code: event.code }, 'a Discord shard disconnected and will not reconnect');
    });
    client.on(Events.ShardError, (error, shardId) => {
      // A refused intent is reported once, by start(), with what to do about it.
      if (error.message !== 'Used disallowed intents') logger.warn({ shardId, err: error }, 'Discord gateway error');
    });
    client.on(Events.Error, (error) => logger.error({ err: error }, 'discord.js error'));
    client.on(Events.MessageCreate, (message) => this.guard(this.onMessage(message), 'a Discord message'));
    client.on(Events.InteractionCreate, (interaction) => this.guard(this.onInteraction(interaction), 'a Discord interaction'));
    client.on(Events.MessageReactionAdd, (reaction, user) => this.guard(this.onReaction(reaction, user, true), 'a Discord reaction'));
    client.on(Events.MessageReactionRemove, (reaction, user) => this.guard(this.onReaction(reaction, user, false), 'a Discord reaction removal'));
    const ready = new Promise<Client<true>>((resolve) => client.once(Events.ClientReady, resolve));
    try {
      await client.login(this.options.token);
    } catch (error) {
      await client.destroy();
      if (refused) throw new IntentsRefused();
      throw error;
    }
    return ready;
  }

  private guard(work: Promise<void>, what: string): void {
    work.catch((error: unknown) => this.options.logger.error({ err: error }, `handling ${what} failed`));
  }

  private async onMessage(message: Message): Promise<void> {
    if (message.author.bot || message.system) return;
    const botId = message.client.user.id;
    const inDm = !message.inGuild();
    const mentioned = message.mentions.users.has(botId);
    const channel = message.channel;
    const autoAnswer = this.autoAnswer.has(channel.id) || (channel.isThread() && channel.parentId !== null && this.autoAnswer.has(channel.parentId));
    if (!inDm && !mentioned && !autoAnswer) return;
    const text = message.content.replace(new RegExp(`<@!?${botId}>`, 'gu'), '').trim();
    // Without Message Content, Discord blanks the text of messages that do not mention the bot.
    if (!text && message.attachments.size === 0 && !mentioned && !inDm) return;
    const incoming: IncomingMessage = {
      platform: 'discord',
      scope: scopeOf(message.guildId, message.channelId, channel),
      user: { id: message.author.id, displayName: message.member?.displayName ?? message.author.displayName },
      text,
      attachments: message.attachments.map(toAttachment),
      platformAdmin: message.member?.permissions.has(PermissionFlagsBits.ManageGuild) ?? false,
    };
    const typing = 'sendTyping' in channel ? () => channel.sendTyping() : null;
    await this.answer(incoming, messageSink(message, inDm, this.options.maxUploadBytes ?? DEFAULT_UPLOAD_BYTES), message.channelId, typing);
  }

  private async onInteraction(interaction: Interaction): Promise<void> {
    if (!interaction.isChatInputCommand()) return;
    // First, before anything slow: an interaction not acknowledged within 3 s is lost.
    await interaction.deferReply();
    const command = commandOfInteraction(this.options.commands, interaction);
    if (!command) {
      await interaction.editReply(`I do not know /${interaction.commandName} any more; try /help.`);
      return;
    }
    const values = new Map<string, OptionValue>();
    const options = interaction.options.data.flatMap((option) => (option.options ? option.options : [option]));
    for (const option of options) if (option.value !== undefined) values.set(option.name, option.value);
    const files = attachmentOptionNames(command).flatMap((name) => interaction.options.getAttachment(name) ?? []);
    const incoming: IncomingMessage = {
      platform: 'discord',
      scope: scopeOf(interaction.guildId, interaction.channelId, interaction.channel),
      user: { id: interaction.user.id, displayName: interaction.inCachedGuild() ? interaction.member.displayName : interaction.user.displayName },
      text: commandLine(command, values),
      attachments: files.map(toAttachment),
      platformAdmin: interaction.memberPermissions?.has(PermissionFlagsBits.ManageGuild) ?? false,
    };
    await this.answer(incoming, interactionSink(interaction, this.options.interactionTokenMs ?? INTERACTION_TOKEN_MS, this.options.maxUploadBytes ?? DEFAULT_UPLOAD_BYTES), interaction.channelId, null);
  }

  /** A 👍 or 👎 added or removed by a person (not this bot or another), for the feedback record to judge. */
  private async onReaction(reaction: MessageReaction | PartialMessageReaction, user: User | PartialUser, stands: boolean): Promise<void> {
    const vote = VOTES_BY_EMOJI.get(reaction.emoji.name?.replace(SKIN_TONES, '') ?? '');
    if (!this.reactions || !vote || user.id === reaction.client.user.id || user.bot) return;
    const { message } = reaction;
    await this.reactions.react({ platform: 'discord', workspace: message.guildId ?? 'dm', channel: message.channelId, messageId: message.id }, vote, user.id, stands);
  }

  /** Relays the reply to `incoming`, posted in channel `channelId`; with feedback on, an answer's messages are remembered. */
  private async answer(incoming: IncomingMessage, sink: ReplySink, channelId: string, typing: (() => Promise<void>) | null): Promise<void> {
    const tracked = this.reactions?.track(incoming, channelId);
    try {
      await this.relay(incoming, sink, typing, tracked?.posted);
    } finally {
      await tracked?.finished();
    }
  }

  /** Runs the engine on `incoming` and streams its reply into `sink`, typing while it works; files follow the text. */
  private async relay(incoming: IncomingMessage, sink: ReplySink, typing: (() => Promise<void>) | null, onPosted: ((messageId: string) => void) | undefined): Promise<void> {
    const { logger } = this.options;
    const stream = new EditStream(sink, { format: DISCORD_MESSAGES, intervalMs: this.options.editIntervalMs ?? EDIT_INTERVAL_MS, onPosted });
    const files: ReplyFile[] = [];
    const sendTyping = () => typing?.().catch((error: unknown) => logger.warn({ err: error }, 'could not show typing on Discord'));
    void sendTyping();
    const typingTimer = typing ? setInterval(sendTyping, TYPING_REFRESH_MS) : null;
    let failureNote: string | null = null;
    try {
      for await (const part of this.engine.handle(incoming)) {
        if (isReplyFile(part)) files.push(part);
        else stream.push(part);
      }
    } catch (error) {
      logger.error({ err: error, user: `discord:${incoming.user.id}`, text: incoming.text.slice(0, 200) }, 'the engine failed on a Discord message');
      failureNote = errorReply(error);
    } finally {
      if (typingTimer) clearInterval(typingTimer);
    }
    await (failureNote === null ? stream.finish() : stream.fail(failureNote));
    let shown = stream.messageCount;
    for (const file of files) shown = await this.sendFile(sink, shown, file);
    if (shown === 0) await sink.post(0, SOMETHING_WENT_WRONG);
  }

  /** Shows `file` as message `index`, or a line that says why Discord did not take it; returns the next index. */
  private async sendFile(sink: ReplySink, index: number, file: ReplyFile): Promise<number> {
    if (file.data.byteLength > sink.uploadLimit) {
      await sink.post(index, fileTooLargeNote(file, 'Discord', sink.uploadLimit));
      return index + 1;
    }
    try {
      await sink.attach(index, file);
    } catch (error) {
      this.options.logger.warn({ err: error, file: file.name, bytes: file.data.byteLength }, 'Discord refused a file upload');
      await sink.post(index, fileRefusedNote(file, 'Discord', error instanceof Error ? error.message : String(error)));
    }
    return index + 1;
  }
}

class IntentsRefused extends Error {}

/** The engine's scope: a thread's messages belong to its channel, and to the thread. */
function scopeOf(guildId: string | null, channelId: string, channel: Channel | null): Scope {
  const workspace = guildId ?? 'dm';
  if (channel?.isThread() && channel.parentId) return { workspace, channel: channel.parentId, thread: channel.id };
  return { workspace, channel: channelId };
}

/** Where a reply's messages go: a channel, or an interaction's reply and follow-ups. */
interface ReplySink extends EditableMessages {
  /** Shows message `index` for the first time, carrying `file` as an attachment and its title as the text; resolves to its id. */
  attach(index: number, file: ReplyFile): Promise<string>;
  /** The largest file, in bytes, that Discord takes here. */
  readonly uploadLimit: number;
}

/** A message's text, or a file with its title: what post and attach show. */
interface MessageContent {
  readonly content?: string;
  readonly files?: AttachmentPayload[];
}

function textMessage(text: string): MessageContent {
  return { content: text };
}

function fileMessage(file: ReplyFile): MessageContent {
  return { content: file.title, files: [{ attachment: Buffer.from(file.data.buffer, file.data.byteOffset, file.data.byteLength), name: file.name }] };
}

function messageSink(question: Message, inDm: boolean, uploadLimit: number): ReplySink {
  const posted: Message[] = [];
  const show = async (index: number, content: MessageContent) => {
    const channel = question.channel;
    if (index === 0 && !inDm) posted[index] = await question.reply(content);
    else if ('send' in channel) posted[index] = await channel.send(content);
    else throw new DiscordAdapterError('DISCORD_OPTIONS_INVALID', `cannot send messages in channel ${channel.id}`);
    return posted[index].id;
  };
  return {
    uploadLimit,
    post: (index, text) => show(index, textMessage(text)),
    attach: (index, file) => show(index, fileMessage(file)),
    async edit({ index }, text) {
      posted[index] = await posted[index].edit({ content: text });
    },
  };
}

/**
 * The deferred reply, then follow-ups. A reply that outlives the interaction's token (a long
 * fine-tune) goes on in plain channel messages, so that its end is not lost.
 */
function interactionSink(interaction: ChatInputCommandInteraction, tokenMs: number, defaultUploadLimit: number): ReplySink {
  const followUps: string[] = [];
  const inChannel = new Map<number, Message>();
  const expired = () => Date.now() - interaction.createdTimestamp >= tokenMs;
  const sendInChannel = async (index: number, content: MessageContent) => {
    const channel = interaction.channel;
    if (!channel || !('send' in channel)) throw new DiscordAdapterError('DISCORD_OPTIONS_INVALID', `the reply to /${interaction.commandName} outlived its interaction, and channel ${interaction.channelId} takes no messages`);
    const sent = await channel.send(content);
    inChannel.set(index, sent);
    return sent.id;
  };
  const show = async (index: number, content: MessageContent) => {
    if (expired()) return sendInChannel(index, content);
    if (index === 0) return (await interaction.editReply(content)).id;
    followUps[index] = (await interaction.followUp(content)).id;
    return followUps[index];
  };
  return {
    // Discord names the limit in each interaction; discord.js leaves it undefined where it did not.
    uploadLimit: interaction.attachmentSizeLimit ?? defaultUploadLimit,
    post: (index, text) => show(index, textMessage(text)),
    attach: (index, file) => show(index, fileMessage(file)),
    async edit({ index }, text) {
      const moved = inChannel.get(index);
      if (moved) inChannel.set(index, await moved.edit({ content: text }));
      else if (expired()) await sendInChannel(index, textMessage(text));
      else await interaction.editReply({ content: text, message: index === 0 ? '@original' : followUps[index] });
    },
  };
}

function toAttachment(file: DiscordAttachment): Attachment {
  return {
    name: file.name,
    size: file.size,
    async bytes() {
      if (file.size > MAX_ATTACHMENT_BYTES) throw new DiscordAdapterError('DISCORD_DOWNLOAD_FAILED', `${file.name} is ${file.size.toLocaleString('en')} bytes; files up to ${MAX_ATTACHMENT_BYTES.toLocaleString('en')} bytes are read`);
      const response = await fetch(file.url);
      if (!response.ok) throw new DiscordAdapterError('DISCORD_DOWNLOAD_FAILED', `downloading ${file.name} from Discord failed: HTTP ${response.status}`);
      return new Uint8Array(await response.arrayBuffer());
    },
  };
}
