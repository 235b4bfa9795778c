import { App, HTTPReceiver, type Logger as BoltLogger, LogLevel, type RespondFn, SocketModeReceiver, type SlashCommand, webApi } from '@slack/bolt';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { type Adapter, type ChatEngine, tellsAnswers } from '../../core/conversation/adapter.js';
import { envName, type TunebotConfig } from '../../core/config.js';
import type { AnswerFeedback, Vote } from '../../core/conversation/feedback.js';
import { errorReply } from '../../core/conversation/error-reply.js';
import type { IncomingMessage } from '../../core/conversation/message.js';
import { isReplyFile, type ReplyFile } from '../../core/conversation/reply.js';
import type { Logger } from '../../log.js';
import { EditStream } from '../edit-stream.js';
import { ReactionFeedback, type TrackedReply } from '../reaction-feedback.js';
import { SlackAdapterError } from './errors.js';
import { SlashReply } from './slash-reply.js';
import { MemorySeenEvents, type SeenEvents } from './seen-events.js';
import { type SlackFileRef, type SlackFiles, slackFiles } from './slack-files.js';
import { fromSlackText, SLACK_MESSAGES, straightenQuotes, toSlackText } from './slack-text.js';
import { SLACK_UPLOAD_LIMIT, type UploadDestination, uploadReplyFiles } from './slack-uploads.js';
import { SlackUsers } from './slack-users.js';

/**
 * The Slack adapter: Bolt's app, in Socket Mode (app token) or over HTTP (Slack posts events
 * and slash commands to /slack/events; Bolt checks each request's signature and age). It
 * answers mentions and direct messages in their thread, streaming, and the slash commands
 * /ask, /faq, /model, /forget (and /tunebot <any command>), with the engine's commands.
 *
 * FAQ import from Slack: share the file in a direct message with the comment "faq import"
 * (or, in a channel, mention the bot in the file's comment: "@tunebot faq import"); or share
 * it first and then run the slash command /faq import in the same conversation within ten
 * minutes, which imports the newest file you shared there (files.list).
 *
 * Files a reply carries (an FAQ export, a loss curve) follow its text: shared in the thread
 * of the answer, or for a slash command in the channel it was run in (response_url carries
 * text only); one Slack does not take is replaced by a line in the reply that says why.
 *
 * With feedback on, a :+1: or :-1: on an answer it posted goes to the feedback record (a :-1:
 * puts the question in the admins' inbox); its own reactions and those on other messages are
 * ignored.
 *
 * The Slack app needs the bot scopes app_mentions:read, chat:write, im:history, users:read,
 * files:read, files:write, reactions:read and commands; the events app_mention, message.im,
 * reaction_added and reaction_removed; the slash commands above
 * (their Request URL, in HTTP mode, is the same /slack/events); Socket Mode also needs an
 * app-level token with connections:write.
 */
export type SlackConfig = TunebotConfig['slack'];

export interface SlackAdapterOptions {
  readonly config: SlackConfig;
  readonly logger: Logger;
  /** HTTP mode's listen address; all interfaces when left out. */
  readonly host?: string;
  /** Where event ids are remembered; one instance's memory by default, RedisSeenEvents to share them among instances. */
  readonly seenEvents?: SeenEvents;
  /** The least time between two updates of one message. */
  readonly updateIntervalMs?: number;
  /** How often a long slash command (a fine-tune) reports progress. */
  readonly slashProgressMs?: number;
  /** The largest file a reply uploads (bytes); Slack's own limit, 1 GB, by default. */
  readonly maxUploadBytes?: number;
  /** Socket Mode: how long start-up waits for Slack's hello on the WebSocket. */
  readonly connectTimeoutMs?: number;
  /** Where :+1: and :-1: on answers go; needs an engine with onAnswer. Left out: reactions are ignored. */
  readonly feedback?: AnswerFeedback;
}

/** From auth.test: the bot's user and bot ids, and its workspace. */
export interface SlackBot {
  readonly userId: string;
  readonly botId: string | null;
  readonly teamId: string;
}

export const SLASH_COMMANDS = ['ask', 'faq', 'model', 'forget', 'tunebot'] as const;
export const IMPORT_FILE_WINDOW_MS = 10 * 60_000;
const APP_TOKEN_PREFIX = 'xapp-';
const DEFAULT_UPDATE_INTERVAL_MS = 1000;
const DEFAULT_SLASH_PROGRESS_MS = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** Message subtypes that are a person writing: a plain message has none. */
const ANSWERED_SUBTYPES = new Set(['file_share', 'thread_broadcast']);
/** Reaction names, less a skin tone (":+1::skin-tone-3:" arrives as "+1::skin-tone-3"). */
const VOTES_BY_REACTION: ReadonlyMap<string, Vote> = new Map([
  ['+1', 'up'],
  ['thumbsup', 'up'],
  ['-1', 'down'],
  ['thumbsdown', 'down'],
]);
const NO_FILE_TO_IMPORT =
  'I found no file you shared here in the last 10 minutes. Share the FAQ file (csv, json, jsonl, yaml or markdown) in this conversation, then run /faq import again; or send it to me in a direct message with the comment "faq import".';

export class SlackAdapter implements Adapter {
  readonly name = 'Slack';
  private running: { readonly bot: SlackBot; readonly port: number | null; readonly handlers: SlackHandlers; readonly close: () => Promise<void> } | null = null;

  constructor(
    private readonly engine: ChatEngine,
    private readonly options: SlackAdapterOptions,
  ) {}

  /** The bot Slack knows this adapter as; once started. */
  get bot(): SlackBot {
    return this.started().bot;
  }

  /** HTTP mode: the port Slack posts to, at /slack/events; null in Socket Mode. Once started. */
  get port(): number | null {
    return this.started().port;
  }

  /** Checks the tokens (auth.test), then listens (HTTP mode) or connects (Socket Mode). */
  async start(): Promise<void> {
    const { engine, options } = this;
    const { config, logger } = options;
    if (!config.botToken) throw invalidSetting('botToken', 'SLACK_BOT_TOKEN', 'the Slack adapter needs the bot token');
    const botToken = config.botToken;
    if (options.feedback && !tellsAnswers(engine)) throw new SlackAdapterError('SLACK_CONFIG_INVALID', 'feedback reactions need an engine that tells which questions it answered (onAnswer)');
    const boltLog = boltLogger(logger);
    const clientOptions = { slackApiUrl: config.apiUrl ?? undefined, logger: boltLog };
    const receiver = createReceiver(config, boltLog, clientOptions);
    const client = new webApi.WebClient(botToken, clientOptions);
    const bot = await identify(client);
    const app = new App({
      receiver,
      // The token is checked once above; Bolt takes the identity from there instead of calling auth.test again.
      authorize: async () => ({ botToken, botUserId: bot.userId, botId: bot.botId ?? undefined, teamId: bot.teamId }),
      logger: boltLog,
      clientOptions,
    });
    const handlers = new SlackHandlers(engine, {
      client,
      bot,
      logger,
      users: new SlackUsers(client, logger),
      files: slackFiles(client, botToken),
      seen: options.seenEvents ?? new MemorySeenEvents(),
      updateIntervalMs: options.updateIntervalMs ?? DEFAULT_UPDATE_INTERVAL_MS,
      slashProgressMs: options.slashProgressMs ?? DEFAULT_SLASH_PROGRESS_MS,
      maxUploadBytes: options.maxUploadBytes ?? SLACK_UPLOAD_LIMIT,
      reactions: options.feedback && tellsAnswers(engine) ? new ReactionFeedback(engine, options.feedback, logger) : null,
    });
    app.event('app_mention', async ({ event, body }) => handlers.onMessage(event, { eventId: body.event_id, teamId: body.team_id }, 'mention'));
    app.event('message', async ({ event, body }) => handlers.onMessage(event, { eventId: body.event_id, teamId: body.team_id }, 'dm'));
    app.event('reaction_added', async ({ event, body }) => handlers.onReaction(event, body.team_id, true));
    app.event('reaction_removed', async ({ event, body }) => handlers.onReaction(event, body.team_id, false));
    app.command(new RegExp(`^/(?:${SLASH_COMMANDS.join('|')})$`, 'u'), async ({ command, ack, respond }) => {
      await ack();
      await handlers.onSlashCommand(command, respond);
    });
    app.error(async (error) => {
      logger.error({ err: error, code: error.code }, 'Bolt could not process a Slack request');
    });

    let port: number | null = null;
    try {
      if (receiver instanceof HTTPReceiver) {
        const server = await receiver.start({ port: config.port, host: options.host });
        port = (server.address() as AddressInfo).port;
        logger.info({ port, path: '/slack/events' }, 'Slack adapter listening (HTTP mode)');
      } else {
        await connectSocketMode(app, receiver, options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
        logger.info('Slack adapter connected (Socket Mode)');
      }
    } catch (error) {
      handlers.close();
      throw error;
    }
    const close = async () => {
      // Bolt's Socket Mode receiver leaves the WebSocket's close handshake running; waiting for it closes the connection cleanly.
      if (receiver instanceof SocketModeReceiver) await receiver.client.disconnect();
      else await app.stop();
    };
    this.running = { bot, port, handlers, close };
  }

  /** Resolves when the answers and commands under way are done. */
  async idle(): Promise<void> {
    await this.running?.handlers.idle();
  }

  /** Stops taking events and waits for the answers under way. */
  async stop(): Promise<void> {
    const running = this.running;
    if (!running) return;
    this.running = null;
    await running.close();
    await running.handlers.idle();
    running.handlers.close();
  }

  private started(): NonNullable<SlackAdapter['running']> {
    if (!this.running) throw new Error('the Slack adapter is not started');
    return this.running;
  }
}

function createReceiver(config: SlackConfig, log: BoltLogger, clientOptions: webApi.WebClientOptions): HTTPReceiver | SocketModeReceiver {
  if (config.mode === 'http') {
    if (!config.signingSecret) throw invalidSetting('signingSecret', 'SLACK_SIGNING_SECRET', 'HTTP mode needs the signing secret to check requests');
    const health = { path: '/healthz', method: 'GET', handler: (_: unknown, response: ServerResponse) => response.end('ok') };
    return new HTTPReceiver({ signingSecret: config.signingSecret, logger: log, customRoutes: [health] });
  }
  if (!config.appToken) throw invalidSetting('appToken', 'SLACK_APP_TOKEN', 'Socket Mode needs an app-level token');
  // Slack answers another kind of token with an error that the Socket Mode client retries forever.
  if (!config.appToken.startsWith(APP_TOKEN_PREFIX)) {
    throw invalidSetting('appToken', 'SLACK_APP_TOKEN', `Socket Mode needs an app-level token, which starts with ${APP_TOKEN_PREFIX} (Basic Information > App-Level Tokens, scope connections:write); the one given does not`);
  }
  return new SocketModeReceiver({ appToken: config.appToken, logger: log, installerOptions: { clientOptions } });
}

/**
 * Opens the Socket Mode connection; a refused app token fails here (the client gives up on
 * invalid_auth and the like). A WebSocket that never says hello would have the client retry
 * for ever, so start-up gives up after `timeoutMs` with one clear error.
 */
async function connectSocketMode(app: App, receiver: SocketModeReceiver, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const started = app.start().then(
    () => 'started' as const,
    (error: unknown) => {
      throw new SlackAdapterError('SLACK_AUTH_FAILED', `Slack refused the app token (apps.connections.open): ${(error as Error).message}`, { cause: error });
    },
  );
  try {
    if ((await Promise.race([started, timeout])) === 'started') return;
  } finally {
    clearTimeout(timer);
  }
  started.catch(() => undefined);
  await receiver.client.disconnect();
  throw new SlackAdapterError(
    'SLACK_UNREACHABLE',
    `no Socket Mode connection within ${timeoutMs / 1000} s: Slack handed out a WebSocket URL but the connection never said hello (is wss-primary.slack.com reachable from here?)`,
  );
}

function invalidSetting(key: keyof SlackConfig, alias: string, why: string): SlackAdapterError {
  return new SlackAdapterError('SLACK_CONFIG_INVALID', `${why}: set slack.${key} (${envName(['slack', key])} or ${alias})`);
}

async function identify(client: webApi.WebClient): Promise<SlackBot> {
  try {
    const auth = await client.auth.test();
    if (!auth.user_id || !auth.team_id) throw new Error('auth.test named no user or team');
    return { userId: auth.user_id, botId: auth.bot_id ?? null, teamId: auth.team_id };
  } catch (error) {
    throw new SlackAdapterError('SLACK_AUTH_FAILED', `Slack refused the bot token (auth.test): ${(error as Error).message}`, { cause: error });
  }
}

/** A message event's fields that matter here, whichever of Slack's event shapes it came in. */
interface SlackMessage {
  readonly channel: string;
  readonly ts: string;
  readonly threadTs?: string;
  readonly channelType?: string;
  readonly user?: string;
  readonly botId?: string;
  readonly subtype?: string;
  readonly text: string;
  readonly files: SlackFileRef[];
}

interface HandlerContext {
  readonly client: webApi.WebClient;
  readonly bot: SlackBot;
  readonly logger: Logger;
  readonly users: SlackUsers;
  readonly files: SlackFiles;
  readonly seen: SeenEvents;
  readonly updateIntervalMs: number;
  readonly slashProgressMs: number;
  readonly maxUploadBytes: number;
  readonly reactions: ReactionFeedback | null;
}

class SlackHandlers {
  private readonly underWay = new Set<Promise<void>>();

  constructor(
    private readonly engine: ChatEngine,
    private readonly context: HandlerContext,
  ) {}

  onMessage(event: object, envelope: { eventId: string; teamId: string }, kind: 'mention' | 'dm'): Promise<void> {
    return this.track(this.answerMessage(readSlackMessage(event), envelope, kind));
  }

  onSlashCommand(command: SlashCommand, respond: RespondFn): Promise<void> {
    return this.track(this.answerSlashCommand(command, respond));
  }

  /**
   * A :+1: or :-1: added or removed on a message, for the feedback record to judge. The bot's
   * own reactions never get here: Bolt's ignoreSelf drops events by the bot user.
   */
  onReaction(event: { user: string; reaction: string; item: { type: string; channel?: string; ts?: string } }, teamId: string, stands: boolean): Promise<void> {
    const { reactions } = this.context;
    const vote = VOTES_BY_REACTION.get(event.reaction.split('::')[0]);
    const { channel, ts } = event.item;
    if (!reactions || !vote || event.item.type !== 'message' || !channel || !ts) return Promise.resolve();
    return this.track(reactions.react({ platform: 'slack', workspace: teamId, channel, messageId: ts }, vote, event.user, stands).then(() => undefined));
  }

  close(): void {
    this.context.reactions?.close();
  }

  async idle(): Promise<void> {
    await Promise.allSettled([...this.underWay]);
  }

  private track(work: Promise<void>): Promise<void> {
    this.underWay.add(work);
    return work.finally(() => this.underWay.delete(work));
  }

  private async answerMessage(message: SlackMessage | null, envelope: { eventId: string; teamId: string }, kind: 'mention' | 'dm'): Promise<void> {
    const { bot, client, files, logger, users } = this.context;
    if (!message?.user || message.botId || message.user === bot.userId) return;
    if (message.subtype !== undefined && !ANSWERED_SUBTYPES.has(message.subtype)) return;
    if (kind === 'dm' && message.channelType !== 'im') return;
    if (!(await this.claim(`event:${envelope.eventId}`)) || !(await this.claim(`message:${message.channel}:${message.ts}`))) {
      logger.info({ eventId: envelope.eventId, channel: message.channel, ts: message.ts }, 'skipped a Slack event already answered');
      return;
    }
    // In a channel the answer goes in the message's thread; in a DM, beside the message unless it is in a thread.
    const thread = kind === 'mention' ? (message.threadTs ?? message.ts) : message.threadTs;
    let tracked: TrackedReply | undefined;
    const reply = new EditStream(
      {
        post: async (_, text) => {
          const posted = await client.chat.postMessage({ channel: message.channel, thread_ts: thread, text });
          if (!posted.ts) throw new Error('chat.postMessage returned no ts');
          return posted.ts;
        },
        edit: async ({ id }, text) => {
          await client.chat.update({ channel: message.channel, ts: id, text });
        },
      },
      { format: SLACK_MESSAGES, intervalMs: this.context.updateIntervalMs, render: toSlackText, onPosted: (ts) => tracked?.posted(ts) },
    );
    try {
      const who = await users.lookup(message.user);
      const incoming: IncomingMessage = {
        platform: 'slack',
        scope: { workspace: envelope.teamId, channel: message.channel, thread },
        user: { id: message.user, displayName: who.displayName },
        text: commandOrQuestion(fromSlackText(message.text, bot.userId), message.files.length > 0),
        attachments: await Promise.all(message.files.map((file) => files.attachment(file))),
        platformAdmin: who.isAdmin,
      };
      tracked = this.context.reactions?.track(incoming, message.channel);
      await this.relay(incoming, reply, { channel: message.channel, threadTs: thread });
    } catch (error) {
      logger.error({ err: error, channel: message.channel, ts: message.ts }, 'answering a Slack message failed');
      await reply.fail(errorReply(error)).catch((failure: unknown) => logger.error({ err: failure }, 'could not tell the user the answer failed'));
    } finally {
      await tracked?.finished();
    }
  }

  /**
   * Runs the engine on `incoming`: its text goes into `reply`; then its files are uploaded to
   * `destination`, and a line for each one Slack did not take ends the reply.
   */
  private async relay(incoming: IncomingMessage, reply: EditStream | SlashReply, destination: UploadDestination): Promise<void> {
    const files: ReplyFile[] = [];
    for await (const part of this.engine.handle(incoming)) {
      if (isReplyFile(part)) files.push(part);
      else await reply.push(part);
    }
    await reply.finish();
    const notes = await uploadReplyFiles(this.context.client, files, destination, this.context.maxUploadBytes, this.context.logger);
    if (notes.length === 0) return;
    await reply.push(`\n\n${notes.join('\n')}`);
    await reply.finish();
  }

  /** Slack acknowledged the event already, so when the store of seen events fails, answering twice beats never. */
  private async claim(key: string): Promise<boolean> {
    try {
      return await this.context.seen.claim(key);
    } catch (error) {
      this.context.logger.warn({ err: error, key }, 'could not check whether a Slack event was already answered; answering it');
      return true;
    }
  }

  private async answerSlashCommand(command: SlashCommand, respond: RespondFn): Promise<void> {
    const { bot, files, logger, users } = this.context;
    const name = command.command.slice(1);
    const args = straightenQuotes(fromSlackText(command.text, bot.userId));
    const line = name === 'tunebot' ? args || 'help' : `${name} ${args}`.trim();
    const responseType = name === 'ask' ? 'in_channel' : 'ephemeral';
    const send = async (text: string) => {
      await respond({ response_type: responseType, replace_original: false, text });
    };
    try {
      const attachments = [];
      if (/^faq\s+import\b/iu.test(line)) {
        const file = await files.latestShared(command.channel_id, command.user_id, IMPORT_FILE_WINDOW_MS);
        if (!file) return await send(NO_FILE_TO_IMPORT);
        attachments.push(await files.attachment(file));
      }
      const who = await users.lookup(command.user_id);
      const incoming: IncomingMessage = {
        platform: 'slack',
        scope: { workspace: command.team_id, channel: command.channel_id },
        user: { id: command.user_id, displayName: who.displayName },
        text: `/${line}`,
        attachments,
        platformAdmin: who.isAdmin,
      };
      const reply = new SlashReply({ respond: send }, { progressMs: this.context.slashProgressMs });
      await this.relay(incoming, reply, { channel: command.channel_id });
    } catch (error) {
      logger.error({ err: error, command: command.command, user: command.user_id }, 'a Slack slash command failed');
      await send(errorReply(error)).catch((failure: unknown) => logger.error({ err: failure }, 'could not tell the user the command failed'));
    }
  }
}

/**
 * A message is a command when it starts with "/". Slack's composer takes a leading "/" as a
 * slash command, so a file shared with the comment "faq import ..." is the import command too.
 */
function commandOrQuestion(text: string, hasFiles: boolean): string {
  if (text.startsWith('/')) return straightenQuotes(text);
  if (hasFiles && /^faq\s+import\b/iu.test(text)) return `/${straightenQuotes(text)}`;
  return text;
}

function readSlackMessage(event: object): SlackMessage | null {
  const fields = event as Record<string, unknown>;
  const text = (name: string) => (typeof fields[name] === 'string' ? (fields[name] as string) : undefined);
  const channel = text('channel');
  const ts = text('ts');
  if (!channel || !ts) return null;
  const files = Array.isArray(fields.files) ? fields.files.filter(isFileRef) : [];
  return {
    channel,
    ts,
    threadTs: text('thread_ts'),
    channelType: text('channel_type'),
    user: text('user'),
    botId: text('bot_id'),
    subtype: text('subtype'),
    text: text('text') ?? '',
    files: files.map((file) => ({ id: file.id, name: typeof file.name === 'string' ? file.name : undefined, size: typeof file.size === 'number' ? file.size : undefined })),
  };
}

function isFileRef(value: unknown): value is { id: string; name?: unknown; size?: unknown } {
  return typeof value === 'object' && value !== null && typeof (value as { id?: unknown }).id === 'string';
}

/** Bolt's and the Web API client's logs, into the app's logger. */
function boltLogger(logger: Logger): BoltLogger {
  const write = (level: 'debug' | 'info' | 'warn' | 'error') => (...parts: unknown[]) => {
    logger[level]({ from: 'bolt' }, parts.map((part) => (typeof part === 'string' ? part : inspect(part, { depth: 3 }))).join(' '));
  };
  const levels: Record<string, LogLevel> = { trace: LogLevel.DEBUG, debug: LogLevel.DEBUG, info: LogLevel.INFO, warn: LogLevel.WARN };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    // The app's logger owns the level; Bolt only asks.
    setLevel: () => undefined,
    getLevel: () => levels[logger.level] ?? LogLevel.ERROR,
    setName: () => undefined,
  };
}
