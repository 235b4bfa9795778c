import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ChannelType, GatewayIntentBits, GatewayOpcodes } from 'discord.js';
import { type WebSocket, WebSocketServer } from 'ws';
import {
  attachmentPayload,
  bytesBody,
  channelPayload,
  type CommandOptionValue,
  interactionPayload,
  type LoopbackGuild,
  type LoopbackUser,
  makeGuild,
  makeUser,
  messagePayload,
  registeredCommand,
  snowflake,
  type StoredFile,
  type StoredMessage,
} from './loopback-discord-payloads.js';

export type { LoopbackGuild, LoopbackUser, StoredFile, StoredMessage } from './loopback-discord-payloads.js';

/**
 * Discord on 127.0.0.1, for the real discord.js client: the REST API under /api/v10 and the
 * gateway (JSON, uncompressed) on /gateway, speaking Discord's protocol: HELLO, IDENTIFY ->
 * READY and GUILD_CREATE, heartbeats, dispatches the test triggers (messages, interactions,
 * reactions); a connection that identifies with a shard gets only the guilds, and the guilds'
 * events, of that shard. It keeps what Discord keeps (messages, reactions, registered commands,
 * interaction state), enforces what Discord enforces
 * (intents gate events and message content, 3 s to acknowledge an interaction, a refused
 * privileged intent closes with 4014, the size limit on uploads) and records every REST call.
 * Bodies are JSON, or multipart/form-data (payload_json and files[n]) when files are uploaded.
 */
export interface LoopbackDiscordOptions {
  readonly guildCount?: number;
  /** The shard count GET /gateway/bot recommends. */
  readonly recommendedShards?: number;
  /** False: an IDENTIFY asking for Message Content is closed with 4014, as for an unapproved bot. */
  readonly messageContentAllowed?: boolean;
  readonly heartbeatIntervalMs?: number;
  /** How long an interaction's token works for webhook calls (Discord: 15 minutes). */
  readonly interactionTokenMs?: number;
  /** The largest file the bot may upload, named in interactions too (Discord: 10 MiB without boosts). */
  readonly attachmentSizeLimit?: number;
  /** How long creating a channel message takes (a slow network): the message appears, and is answered, this much later. */
  readonly postDelayMs?: number;
  /**
   * Fields of a command definition this server does not take: a PUT of commands holding one is
   * refused with 50035 Invalid Form Body, as a Discord-compatible server that lags behind does.
   */
  readonly refusedCommandFields?: readonly string[];
}

export interface RestCall {
  readonly method: string;
  /** The route after /api/v10, e.g. /channels/123/messages. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** The JSON body, or a multipart body's payload_json. */
  readonly body: unknown;
  /** A multipart body's files[n], in order. */
  readonly files: readonly UploadedFile[];
  readonly at: number;
}

export interface UploadedFile {
  readonly name: string;
  readonly contentType: string;
  readonly bytes: Uint8Array;
}

export interface GatewaySession {
  readonly socket: WebSocket;
  shard: [number, number];
  intents: number;
  seq: number;
  identified: boolean;
}

export interface InteractionState {
  readonly id: string;
  readonly token: string;
  readonly dispatchedAt: number;
  readonly channelId: string;
  callback: { type: number; at: number } | null;
  original: StoredMessage | null;
  readonly followups: StoredMessage[];
}

export const TOKEN = 'loopback-bot-token';
const ACK_DEADLINE_MS = 3000;
const DEFAULT_ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024;

export class LoopbackDiscord {
  readonly calls: RestCall[] = [];
  readonly identifies: { shard: [number, number]; intents: number }[] = [];
  /** Every dispatch, with the shard of the connection it went to: which instance received what. */
  readonly dispatches: { event: string; shard: [number, number]; id: string | undefined }[] = [];
  readonly sessions: GatewaySession[] = [];
  readonly messages = new Map<string, StoredMessage>();
  readonly interactions = new Map<string, InteractionState>();
  /** Registered commands by scope: "global" or a guild id. */
  readonly commands = new Map<string, Record<string, unknown>[]>();
  readonly bot: LoopbackUser = makeUser('tunebot', true);
  readonly applicationId = snowflake();
  readonly guilds: LoopbackGuild[];
  heartbeats = 0;
  private readonly attachments = new Map<string, StoredFile>();
  /** Direct-message channel ids by the user's id. */
  private readonly dmChannels = new Map<string, { id: string; user: LoopbackUser }>();
  private readonly wss: WebSocketServer;
  private constructor(
    private readonly server: http.Server,
    private readonly options: LoopbackDiscordOptions,
  ) {
    this.guilds = Array.from({ length: options.guildCount ?? 1 }, (_, i) => makeGuild(i, this.bot));
    this.wss = new WebSocketServer({ server, path: '/gateway' });
    this.wss.on('connection', (socket) => this.onConnection(socket));
    server.on('request', (request, response) => {
      this.route(request, response).catch((error: unknown) => {
        response.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ message: String(error), code: 0 }));
      });
    });
  }

  static async start(options: LoopbackDiscordOptions = {}): Promise<LoopbackDiscord> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new LoopbackDiscord(server, options);
  }

  get origin(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The discord.js client's `rest.api` option. */
  get apiUrl(): string {
    return `${this.origin}/api`;
  }

  user(name: string): LoopbackUser {
    return makeUser(name, false);
  }

  /** A guild member's message; `mention` puts the bot's mention first, as typing @tunebot does. */
  sendMessage(input: { channelId: string; author: LoopbackUser; content: string; mention?: boolean; admin?: boolean; attachments?: { name: string; bytes: Uint8Array }[] }): StoredMessage {
    const guild = this.guildOfChannel(input.channelId);
    const content = input.mention ? `<@${this.bot.id}> ${input.content}` : input.content;
    const message: StoredMessage = { id: snowflake(), channel_id: input.channelId, author: input.author, content, createdAt: Date.now(), edits: 0, editedAt: [] };
    this.messages.set(message.id, message);
    const payload = {
      ...messagePayload(message),
      guild_id: guild.id,
      channel_type: guild.channels.find((channel) => channel.id === input.channelId)?.type,
      member: { roles: input.admin ? [guild.adminRoleId] : [], joined_at: new Date().toISOString(), deaf: false, mute: false, flags: 0 },
      mentions: input.mention ? [this.bot] : [],
      attachments: (input.attachments ?? []).map((file) => attachmentPayload(this.attachment(file.name, file.bytes))),
    };
    for (const session of this.sessionsFor(guild.id)) {
      if (!(session.intents & GatewayIntentBits.GuildMessages)) continue;
      const canRead = session.intents & GatewayIntentBits.MessageContent || input.mention;
      this.dispatch(session, 'MESSAGE_CREATE', canRead ? payload : { ...payload, content: '', attachments: [] });
    }
    return message;
  }

  sendDirectMessage(author: LoopbackUser, content: string): StoredMessage {
    let channel = this.dmChannels.get(author.id);
    if (!channel) this.dmChannels.set(author.id, (channel = { id: snowflake(), user: author }));
    const channelId = channel.id;
    const message: StoredMessage = { id: snowflake(), channel_id: channelId, author, content, createdAt: Date.now(), edits: 0, editedAt: [] };
    this.messages.set(message.id, message);
    for (const session of this.sessionsFor(null)) {
      if (session.intents & GatewayIntentBits.DirectMessages) this.dispatch(session, 'MESSAGE_CREATE', { ...messagePayload(message), channel_type: ChannelType.DM, mentions: [] });
    }
    return message;
  }

  /**
   * `user` adds (or, `remove`, takes back) the reaction `emoji` on `message`, dispatched as
   * MESSAGE_REACTION_ADD or _REMOVE to the sessions with the reactions intent of its guild (or
   * of DMs). As on Discord, a user's reaction is there once: adding it again, or removing one
   * that is not there, changes nothing and dispatches nothing (the result is then false).
   */
  react(input: { message: StoredMessage; user: LoopbackUser; emoji: string; remove?: boolean }): boolean {
    const { message, user, emoji } = input;
    const reactions = (message.reactions ??= new Map<string, Set<string>>());
    const users = reactions.get(emoji) ?? new Set<string>();
    if (input.remove ? !users.delete(user.id) : users.has(user.id)) return false;
    if (!input.remove) users.add(user.id);
    reactions.set(emoji, users);
    const guild = this.guilds.find((candidate) => candidate.channels.some((channel) => channel.id === message.channel_id)) ?? null;
    const common = { user_id: user.id, channel_id: message.channel_id, message_id: message.id, emoji: { id: null, name: emoji }, burst: false, type: 0 };
    const member = { user, roles: [], joined_at: new Date().toISOString(), deaf: false, mute: false, flags: 0 };
    const data = guild ? { ...common, guild_id: guild.id, ...(input.remove ? {} : { member, message_author_id: message.author.id }) } : { ...common, ...(input.remove ? {} : { message_author_id: message.author.id }) };
    const intent = guild ? GatewayIntentBits.GuildMessageReactions : GatewayIntentBits.DirectMessageReactions;
    for (const session of this.sessionsFor(guild?.id ?? null)) {
      if (session.intents & intent) this.dispatch(session, input.remove ? 'MESSAGE_REACTION_REMOVE' : 'MESSAGE_REACTION_ADD', data);
    }
    return true;
  }

  /**
   * Runs a registered slash command as Discord would: the options are checked against the
   * registered definition and typed from it; attachments are served from this server.
   */
  interact(input: { channelId: string; user: LoopbackUser; admin?: boolean; command: string; subcommand?: string; options?: Record<string, CommandOptionValue> }): InteractionState {
    const guild = this.guildOfChannel(input.channelId);
    const definition = registeredCommand(this.commands.get(guild.id) ?? this.commands.get('global') ?? [], input.command);
    const state: InteractionState = { id: snowflake(), token: randomBytes(24).toString('base64url'), dispatchedAt: Date.now(), channelId: input.channelId, callback: null, original: null, followups: [] };
    this.interactions.set(state.token, state);
    const payload = interactionPayload({
      state,
      applicationId: this.applicationId,
      guild,
      user: input.user,
      admin: input.admin ?? false,
      definition,
      subcommand: input.subcommand,
      options: input.options ?? {},
      attachment: (name, bytes) => attachmentPayload(this.attachment(name, bytes)),
      attachmentSizeLimit: this.attachmentSizeLimit,
    });
    const session = this.sessionsFor(guild.id)[0];
    if (!session) throw new Error('no gateway session is ready to receive the interaction');
    this.dispatch(session, 'INTERACTION_CREATE', payload);
    return state;
  }

  botMessages(channelId: string): StoredMessage[] {
    return [...this.messages.values()].filter((message) => message.channel_id === channelId && message.author.id === this.bot.id);
  }

  /** The shards of the connections that received dispatch `event` of `id` (a guild, a message, an interaction). */
  receivers(event: string, id: string): [number, number][] {
    return this.dispatches.filter((dispatch) => dispatch.event === event && dispatch.id === id).map((dispatch) => dispatch.shard);
  }

  callsTo(method: string, pattern: RegExp): RestCall[] {
    return this.calls.filter((call) => call.method === method && pattern.test(call.path));
  }

  /** Waits until `check` returns something truthy (a message, a non-empty text, true). */
  async waitFor<T>(check: () => T | undefined | null | false | '', what: string, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private get attachmentSizeLimit(): number {
    return this.options.attachmentSizeLimit ?? DEFAULT_ATTACHMENT_SIZE_LIMIT;
  }

  /** Keeps a file and serves it at its url, as Discord's CDN does. */
  private attachment(name: string, bytes: Uint8Array, contentType = 'application/octet-stream'): StoredFile {
    const id = snowflake();
    const file: StoredFile = { id, name, contentType, bytes, url: `${this.origin}/attachments/${id}/${encodeURIComponent(name)}` };
    this.attachments.set(id, file);
    return file;
  }

  private guildOfChannel(channelId: string): LoopbackGuild {
    const guild = this.guilds.find((candidate) => candidate.channels.some((channel) => channel.id === channelId));
    if (!guild) throw new Error(`channel ${channelId} is in no loopback guild`);
    return guild;
  }

  /** The ready sessions that receive a guild's events (by Discord's shard formula), or DMs (shard 0). */
  private sessionsFor(guildId: string | null): GatewaySession[] {
    return this.sessions.filter((session) => {
      if (!session.identified) return false;
      const [id, count] = session.shard;
      return guildId === null ? id === 0 : Number((BigInt(guildId) >> 22n) % BigInt(count)) === id;
    });
  }

  private dispatch(session: GatewaySession, event: string, data: Record<string, unknown>): void {
    this.dispatches.push({ event, shard: session.shard, id: typeof data.id === 'string' ? data.id : undefined });
    session.seq += 1;
    session.socket.send(JSON.stringify({ op: GatewayOpcodes.Dispatch, t: event, s: session.seq, d: data }));
  }

  private onConnection(socket: WebSocket): void {
    const session: GatewaySession = { socket, shard: [0, 1], intents: 0, seq: 0, identified: false };
    this.sessions.push(session);
    socket.on('close', () => this.sessions.splice(this.sessions.indexOf(session), 1));
    socket.send(JSON.stringify({ op: GatewayOpcodes.Hello, d: { heartbeat_interval: this.options.heartbeatIntervalMs ?? 2000 } }));
    socket.on('message', (raw) => {
      let payload: { op: number; d: Record<string, unknown> | null };
      try {
        payload = JSON.parse(String(raw)) as typeof payload;
      } catch {
        return socket.close(4002, 'Error while decoding payload.');
      }
      if (payload.op === GatewayOpcodes.Heartbeat) {
        this.heartbeats += 1;
        socket.send(JSON.stringify({ op: GatewayOpcodes.HeartbeatAck }));
      } else if (payload.op === GatewayOpcodes.Identify) {
        this.identify(session, payload.d as { token: string; intents: number; shard?: [number, number] });
      } else if (payload.op === GatewayOpcodes.Resume) {
        // Sessions are not kept across connections: ask for a fresh IDENTIFY, as Discord does for an expired one.
        socket.send(JSON.stringify({ op: GatewayOpcodes.InvalidSession, d: false }));
      } else {
        socket.close(4001, 'Unknown opcode.');
      }
    });
  }

  private identify(session: GatewaySession, data: { token: string; intents: number; shard?: [number, number] }): void {
    if (data.token !== TOKEN) return session.socket.close(4004, 'Authentication failed.');
    if (session.identified) return session.socket.close(4005, 'Already authenticated.');
    session.intents = data.intents;
    session.shard = data.shard ?? [0, 1];
    this.identifies.push({ shard: session.shard, intents: data.intents });
    if (this.options.messageContentAllowed === false && data.intents & GatewayIntentBits.MessageContent) {
      return session.socket.close(4014, 'Disallowed intent(s).');
    }
    session.identified = true;
    const guilds = this.guilds.filter((guild) => this.sessionsFor(guild.id).includes(session));
    this.dispatch(session, 'READY', {
      v: 10,
      user: this.bot,
      guilds: guilds.map((guild) => ({ id: guild.id, unavailable: true })),
      session_id: randomBytes(16).toString('hex'),
      resume_gateway_url: `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}/gateway`,
      shard: session.shard,
      application: { id: this.applicationId, flags: 0 },
    });
    for (const guild of guilds) this.dispatch(session, 'GUILD_CREATE', guild.payload);
  }

  private async route(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', this.origin);
    const method = request.method ?? 'GET';
    const attachment = /^\/attachments\/(\d+)\//u.exec(url.pathname);
    if (method === 'GET' && attachment) {
      const file = this.attachments.get(attachment[1]);
      return void (file ? response.writeHead(200, { 'content-type': file.contentType }).end(file.bytes) : response.writeHead(404).end());
    }
    const raw = await bytesBody(request);
    const json = (status: number, body: unknown) => void response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (!url.pathname.startsWith('/api/v10/')) return json(404, { message: '404: Not Found', code: 0 });
    const parsed = await parseBody(raw, request.headers['content-type'] ?? '');
    if (!parsed) return json(400, { message: 'the loopback takes JSON or multipart/form-data bodies', code: 50035 });
    const path = decodeURIComponent(url.pathname.slice('/api/v10'.length));
    this.calls.push({ method, path, query: Object.fromEntries(url.searchParams), body: parsed.body, files: parsed.files, at: Date.now() });
    if (parsed.files.some((file) => file.bytes.length > this.attachmentSizeLimit)) return json(413, { message: 'Request entity too large', code: 40005 });
    const files = parsed.files.map((file) => this.attachment(file.name, file.bytes, file.contentType));
    if (method === 'POST' && /^\/channels\/\d+\/messages$/u.test(path) && this.options.postDelayMs) await new Promise((resolve) => setTimeout(resolve, this.options.postDelayMs));
    const [status, result] = this.handle(method, path, parsed.body as Record<string, unknown> | null, files, request.headers.authorization);
    if (status === 204) return void response.writeHead(204).end();
    json(status, result);
  }

  private handle(method: string, path: string, body: Record<string, unknown> | null, files: StoredFile[], authorization: string | undefined): [number, unknown] {
    const authorized = authorization === `Bot ${TOKEN}`;
    const notFound: [number, unknown] = [404, { message: 'Unknown', code: 10000 }];
    const unauthorized: [number, unknown] = [401, { message: '401: Unauthorized', code: 0 }];
    let match: RegExpExecArray | null;
    if (method === 'GET' && path === '/gateway/bot') {
      if (!authorized) return unauthorized;
      const url = `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}/gateway`;
      return [200, { url, shards: this.options.recommendedShards ?? 1, session_start_limit: { total: 1000, remaining: 1000, reset_after: 0, max_concurrency: 16 } }];
    }
    if (method === 'GET' && path === '/users/@me') return authorized ? [200, this.bot] : unauthorized;
    if ((match = /^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands$/u.exec(path))) {
      if (!authorized) return unauthorized;
      // Discord answers Missing Access for another application's commands, and for a guild the bot is not in.
      if (match[1] !== this.applicationId || (match[2] && !this.guilds.some((guild) => guild.id === match?.[2]))) return [403, { message: 'Missing Access', code: 50001 }];
      const scope = match[2] ?? 'global';
      if (method === 'GET') return [200, this.commands.get(scope) ?? []];
      if (method === 'PUT' && Array.isArray(body)) {
        const refused = refusedFields(body as Record<string, unknown>[], this.options.refusedCommandFields ?? []);
        if (refused) return [400, { message: 'Invalid Form Body', code: 50035, errors: refused }];
        const previous = this.commands.get(scope) ?? [];
        const stored = (body as Record<string, unknown>[]).map((command) => ({
          type: 1,
          nsfw: false,
          default_member_permissions: null,
          integration_types: [0],
          contexts: null,
          ...command,
          id: previous.find((old) => old.name === command.name)?.id ?? snowflake(),
          application_id: this.applicationId,
          ...(match?.[2] ? { guild_id: match[2] } : {}),
          version: snowflake(),
        }));
        this.commands.set(scope, stored);
        return [200, stored];
      }
    }
    if ((match = /^\/channels\/(\d+)$/u.exec(path)) && method === 'GET') {
      if (!authorized) return unauthorized;
      const id = match[1];
      const guild = this.guilds.find((candidate) => candidate.channels.some((channel) => channel.id === id));
      const channel = guild?.channels.find((candidate) => candidate.id === id);
      if (guild && channel) return [200, channelPayload(channel, guild.id)];
      const dm = [...this.dmChannels.values()].find((candidate) => candidate.id === id);
      return dm ? [200, { id, type: ChannelType.DM, recipients: [dm.user], last_message_id: null, flags: 0 }] : [404, { message: 'Unknown Channel', code: 10003 }];
    }
    if ((match = /^\/channels\/(\d+)\/typing$/u.exec(path)) && method === 'POST') return authorized ? [204, null] : unauthorized;
    if ((match = /^\/channels\/(\d+)\/messages$/u.exec(path)) && method === 'POST') {
      if (!authorized) return unauthorized;
      return this.store(match[1], body, files);
    }
    if ((match = /^\/channels\/(\d+)\/messages\/(\d+)$/u.exec(path)) && method === 'PATCH') {
      if (!authorized) return unauthorized;
      const message = this.messages.get(match[2]);
      if (!message || message.channel_id !== match[1] || message.author.id !== this.bot.id) return [404, { message: 'Unknown Message', code: 10008 }];
      return this.edit(message, body, files);
    }
    if ((match = /^\/interactions\/(\d+)\/([^/]+)\/callback$/u.exec(path)) && method === 'POST') {
      const state = this.interactions.get(match[2]);
      if (!state || state.id !== match[1] || Date.now() - state.dispatchedAt > ACK_DEADLINE_MS) return [404, { message: 'Unknown interaction', code: 10062 }];
      if (state.callback) return [400, { message: 'Interaction has already been acknowledged.', code: 40060 }];
      state.callback = { type: Number(body?.type), at: Date.now() };
      // A deferred response is Discord's "thinking..." message: @original exists from here on, empty.
      const data = body?.data as { content?: string } | undefined;
      state.original = this.newMessage(state.channelId, data?.content ?? '', state.token);
      return [204, null];
    }
    if ((match = /^\/webhooks\/(\d+)\/([^/]+)(?:\/messages\/(@original|\d+))?$/u.exec(path))) {
      const state = this.interactions.get(match[2]);
      if (!state || match[1] !== this.applicationId || !state.callback) return [404, { message: 'Unknown Webhook', code: 10015 }];
      if (Date.now() - state.dispatchedAt > (this.options.interactionTokenMs ?? 15 * 60_000)) return [401, { message: 'Invalid Webhook Token', code: 50027 }];
      const target = match[3] === '@original' ? state.original : state.followups.find((message) => message.id === match?.[3]);
      if (method === 'POST' && !match[3]) {
        const invalid = invalidContent(body, files);
        if (invalid) return invalid;
        const message = this.newMessage(state.channelId, String(body?.content ?? ''), state.token, files);
        state.followups.push(message);
        return [200, messagePayload(message)];
      }
      if (!target) return [404, { message: 'Unknown Message', code: 10008 }];
      if (method === 'PATCH') return this.edit(target, body, files);
      if (method === 'GET') return [200, messagePayload(target)];
    }
    return notFound;
  }

  private store(channelId: string, body: Record<string, unknown> | null, files: StoredFile[]): [number, unknown] {
    const invalid = invalidContent(body, files);
    if (invalid) return invalid;
    const message = this.newMessage(channelId, String(body?.content ?? ''), null, files);
    message.replyTo = (body?.message_reference as { message_id?: string } | undefined)?.message_id;
    return [200, messagePayload(message)];
  }

  private newMessage(channelId: string, content: string, webhookToken: string | null, files: StoredFile[] = []): StoredMessage {
    const message: StoredMessage = { id: snowflake(), channel_id: channelId, author: this.bot, content, createdAt: Date.now(), edits: 0, editedAt: [], webhookToken: webhookToken ?? undefined, files };
    this.messages.set(message.id, message);
    return message;
  }

  private edit(message: StoredMessage, body: Record<string, unknown> | null, files: StoredFile[]): [number, unknown] {
    if (body && 'content' in body) {
      const invalid = invalidContent(body, files);
      if (invalid) return invalid;
      message.content = String(body.content ?? '');
    }
    // New files join the message; which earlier ones stay is not modelled (the bot never removes one).
    if (files.length > 0) message.files = [...(message.files ?? []), ...files];
    message.edits += 1;
    message.editedAt.push(Date.now());
    return [200, messagePayload(message)];
  }
}

/** Discord's answer to an empty or oversized message; a message with files needs no text. */
function invalidContent(body: Record<string, unknown> | null, files: readonly StoredFile[]): [number, unknown] | null {
  const content = body?.content;
  if (typeof content === 'string' && content.length > 0 && content.length <= 2000) return null;
  if (files.length > 0 && (content === undefined || content === null || content === '')) return null;
  const problem = typeof content === 'string' && content.length > 2000 ? 'Must be 2000 or fewer in length.' : 'Cannot send an empty message';
  return [400, { message: 'Invalid Form Body', code: 50035, errors: { content: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH', message: problem }] } } }];
}

/** Discord's error tree for the refused fields of each command, by its index; null when none is refused. */
function refusedFields(commands: readonly Record<string, unknown>[], refused: readonly string[]): Record<string, unknown> | null {
  const errors: Record<string, unknown> = {};
  commands.forEach((command, index) => {
    const fields = refused.filter((field) => command[field] !== undefined);
    if (fields.length > 0) errors[index] = Object.fromEntries(fields.map((field) => [field, { _errors: [{ code: 'UNKNOWN_FIELD', message: 'This field is not supported.' }] }]));
  });
  return Object.keys(errors).length > 0 ? errors : null;
}

/** A JSON body, or a multipart one (payload_json and files[n], as discord.js sends uploads); null for anything else. */
async function parseBody(raw: Buffer, contentType: string): Promise<{ body: unknown; files: UploadedFile[] } | null> {
  if (raw.length === 0) return { body: null, files: [] };
  if (contentType.startsWith('application/json')) return { body: JSON.parse(raw.toString('utf8')), files: [] };
  if (!contentType.startsWith('multipart/form-data')) return null;
  const form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
  const payload = form.get('payload_json');
  const files: UploadedFile[] = [];
  for (const [name, value] of form.entries()) {
    if (!/^files\[\d+\]$/u.test(name) || typeof value === 'string') continue;
    files.push({ name: value.name, contentType: value.type || 'application/octet-stream', bytes: new Uint8Array(await value.arrayBuffer()) });
  }
  return { body: typeof payload === 'string' ? JSON.parse(payload) : null, files };
}
