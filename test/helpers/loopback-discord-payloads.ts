import type http from 'node:http';
import { ApplicationCommandOptionType, ChannelType, InteractionType, PermissionFlagsBits } from 'discord.js';

/** Discord's objects as the gateway and REST API send them, for loopback-discord.ts. */
export interface LoopbackUser {
  readonly id: string;
  readonly username: string;
  readonly discriminator: '0';
  readonly global_name: string;
  readonly avatar: null;
  readonly bot: boolean;
}

export interface LoopbackChannel {
  readonly id: string;
  readonly name: string;
  readonly type: ChannelType.GuildText | ChannelType.PublicThread;
  readonly parentId: string | null;
}

export interface LoopbackGuild {
  readonly id: string;
  readonly adminRoleId: string;
  /** Text channels "general" and "support", and a thread under "general". */
  readonly general: LoopbackChannel;
  readonly support: LoopbackChannel;
  readonly thread: LoopbackChannel;
  readonly channels: readonly LoopbackChannel[];
  /** The GUILD_CREATE dispatch. */
  readonly payload: Record<string, unknown>;
}

export interface StoredMessage {
  readonly id: string;
  readonly channel_id: string;
  readonly author: LoopbackUser;
  content: string;
  /** When it was posted (ms). */
  readonly createdAt: number;
  edits: number;
  /** When each edit arrived (ms). */
  readonly editedAt: number[];
  replyTo?: string;
  /** Set on interaction responses: the interaction's token. */
  readonly webhookToken?: string;
  /** The files the bot attached, as uploaded. */
  files?: StoredFile[];
  /** Who reacted with each emoji. */
  reactions?: Map<string, Set<string>>;
}

/** A file Discord keeps: one a member attached, or one the bot uploaded. */
export interface StoredFile {
  readonly id: string;
  readonly name: string;
  readonly contentType: string;
  readonly bytes: Uint8Array;
  readonly url: string;
}

export type CommandOptionValue = string | number | boolean | LoopbackUser | { readonly name: string; readonly bytes: Uint8Array };

const DISCORD_EPOCH = 1_420_070_400_000n;
let increment = 0n;

/** A new id, ordered by time as Discord's are. */
export function snowflake(): string {
  increment = (increment + 1n) & 0xfffn;
  return String(((BigInt(Date.now()) - DISCORD_EPOCH) << 22n) | increment);
}

/** Everyone's permissions in a loopback guild: see channels, send messages, read history. */
const MEMBER_PERMISSIONS = PermissionFlagsBits.ViewChannel | PermissionFlagsBits.SendMessages | PermissionFlagsBits.ReadMessageHistory;

export function makeUser(name: string, bot: boolean): LoopbackUser {
  return { id: snowflake(), username: name, discriminator: '0', global_name: name, avatar: null, bot };
}

/** Guild `index`: its id puts guild 0 on shard 0 and guild 1 on shard 1 of two. */
export function makeGuild(index: number, bot: LoopbackUser): LoopbackGuild {
  const id = String((BigInt(1_000_000 + index * 3) << 22n) | 1n);
  const general: LoopbackChannel = { id: snowflake(), name: 'general', type: ChannelType.GuildText, parentId: null };
  const support: LoopbackChannel = { id: snowflake(), name: 'support', type: ChannelType.GuildText, parentId: null };
  const thread: LoopbackChannel = { id: snowflake(), name: 'a question', type: ChannelType.PublicThread, parentId: general.id };
  const adminRoleId = snowflake();
  const now = new Date().toISOString();
  const role = (roleId: string, name: string, permissions: bigint, position: number) => ({ id: roleId, name, permissions: String(permissions), position, color: 0, hoist: false, managed: false, mentionable: false, flags: 0, icon: null, unicode_emoji: null });
  const payload = {
    id,
    name: `guild ${index}`,
    icon: null,
    owner_id: snowflake(),
    afk_channel_id: null,
    afk_timeout: 300,
    verification_level: 0,
    default_message_notifications: 0,
    explicit_content_filter: 0,
    roles: [role(id, '@everyone', MEMBER_PERMISSIONS, 0), role(adminRoleId, 'admin', MEMBER_PERMISSIONS | PermissionFlagsBits.ManageGuild, 1)],
    emojis: [],
    stickers: [],
    features: [],
    mfa_level: 0,
    application_id: null,
    system_channel_id: null,
    system_channel_flags: 0,
    rules_channel_id: null,
    public_updates_channel_id: null,
    joined_at: now,
    large: false,
    unavailable: false,
    member_count: 1,
    voice_states: [],
    members: [{ user: bot, roles: [], joined_at: now, deaf: false, mute: false, flags: 0 }],
    channels: [general, support].map((channel, position) => channelPayload(channel, id, position)),
    threads: [channelPayload(thread, id, 0)],
    presences: [],
    stage_instances: [],
    guild_scheduled_events: [],
    soundboard_sounds: [],
    preferred_locale: 'en-US',
    premium_tier: 0,
    nsfw_level: 0,
  };
  return { id, adminRoleId, general, support, thread, channels: [general, support, thread], payload };
}

export function channelPayload(channel: LoopbackChannel, guildId: string, position = 0): Record<string, unknown> {
  const common = { id: channel.id, type: channel.type, guild_id: guildId, name: channel.name, parent_id: channel.parentId, nsfw: false, rate_limit_per_user: 0, last_message_id: null, flags: 0 };
  if (channel.type === ChannelType.PublicThread) {
    return { ...common, owner_id: snowflake(), member_count: 1, message_count: 0, thread_metadata: { archived: false, auto_archive_duration: 1440, archive_timestamp: new Date().toISOString(), locked: false } };
  }
  return { ...common, position, topic: null, permission_overwrites: [] };
}

export function messagePayload(message: StoredMessage): Record<string, unknown> {
  return {
    id: message.id,
    channel_id: message.channel_id,
    author: message.author,
    content: message.content,
    timestamp: new Date(Number((BigInt(message.id) >> 22n) + DISCORD_EPOCH)).toISOString(),
    edited_timestamp: message.edits > 0 ? new Date().toISOString() : null,
    tts: false,
    mention_everyone: false,
    mentions: [],
    mention_roles: [],
    attachments: (message.files ?? []).map(attachmentPayload),
    embeds: [],
    pinned: false,
    type: message.replyTo ? 19 : 0,
    flags: 0,
    components: [],
    ...(message.replyTo ? { message_reference: { type: 0, message_id: message.replyTo, channel_id: message.channel_id } } : {}),
  };
}

export function attachmentPayload(file: StoredFile): Record<string, unknown> {
  return { id: file.id, filename: file.name, size: file.bytes.length, url: file.url, proxy_url: file.url, content_type: file.contentType };
}

/** The registered definition of `/name`, as an interaction needs it. */
export function registeredCommand(commands: readonly Record<string, unknown>[], name: string): Record<string, unknown> {
  const found = commands.find((command) => command.name === name);
  if (!found) throw new Error(`/${name} is not registered (registered: ${commands.map((command) => command.name).join(', ') || 'none'})`);
  return found;
}

interface OptionDefinition {
  readonly name: string;
  readonly type: ApplicationCommandOptionType;
  readonly required?: boolean;
  readonly choices?: readonly { value: string | number }[];
  readonly min_value?: number;
  readonly options?: readonly OptionDefinition[];
}

/** INTERACTION_CREATE for a chat-input command, its options checked and typed against the registered definition. */
export function interactionPayload(input: {
  state: { id: string; token: string; channelId: string };
  applicationId: string;
  guild: LoopbackGuild;
  user: LoopbackUser;
  admin: boolean;
  definition: Record<string, unknown>;
  subcommand: string | undefined;
  options: Readonly<Record<string, CommandOptionValue>>;
  attachment: (name: string, bytes: Uint8Array) => Record<string, unknown>;
  /** The largest file the bot may upload in its reply. */
  attachmentSizeLimit: number;
}): Record<string, unknown> {
  const { definition, guild } = input;
  let optionDefinitions = (definition.options ?? []) as OptionDefinition[];
  if (input.subcommand !== undefined) {
    const sub = optionDefinitions.find((option) => option.type === ApplicationCommandOptionType.Subcommand && option.name === input.subcommand);
    if (!sub) throw new Error(`/${String(definition.name)} has no subcommand "${input.subcommand}"`);
    optionDefinitions = [...(sub.options ?? [])];
  } else if (optionDefinitions.some((option) => option.type === ApplicationCommandOptionType.Subcommand)) {
    throw new Error(`/${String(definition.name)} needs a subcommand`);
  }
  const resolved: { attachments: Record<string, unknown>; users: Record<string, unknown> } = { attachments: {}, users: {} };
  const values = Object.entries(input.options).map(([name, value]) => {
    const option = optionDefinitions.find((candidate) => candidate.name === name);
    if (!option) throw new Error(`/${String(definition.name)} has no option "${name}"`);
    if (option.choices && !option.choices.some((choice) => choice.value === value)) throw new Error(`"${String(value)}" is not a choice of option "${name}"`);
    if (option.min_value !== undefined && typeof value === 'number' && value < option.min_value) throw new Error(`option "${name}" is at least ${option.min_value}`);
    if (option.type === ApplicationCommandOptionType.Attachment && typeof value === 'object' && 'bytes' in value) {
      const file = input.attachment(value.name, value.bytes);
      resolved.attachments[String(file.id)] = file;
      return { name, type: option.type, value: file.id };
    }
    if (option.type === ApplicationCommandOptionType.User && typeof value === 'object' && 'username' in value) {
      resolved.users[value.id] = value;
      return { name, type: option.type, value: value.id };
    }
    const expected = { [ApplicationCommandOptionType.String]: 'string', [ApplicationCommandOptionType.Integer]: 'number', [ApplicationCommandOptionType.Boolean]: 'boolean' }[option.type as number];
    if (typeof value !== expected) throw new Error(`option "${name}" takes a ${expected ?? `type ${option.type}`} value`);
    return { name, type: option.type, value };
  });
  for (const option of optionDefinitions) {
    if (option.required && !(option.name in input.options)) throw new Error(`option "${option.name}" is required`);
  }
  const channel = guild.channels.find((candidate) => candidate.id === input.state.channelId);
  if (!channel) throw new Error(`channel ${input.state.channelId} is not in guild ${guild.id}`);
  const permissions = MEMBER_PERMISSIONS | (input.admin ? PermissionFlagsBits.ManageGuild : 0n);
  return {
    id: input.state.id,
    application_id: input.applicationId,
    type: InteractionType.ApplicationCommand,
    token: input.state.token,
    version: 1,
    guild_id: guild.id,
    guild: { id: guild.id, locale: 'en-US', features: [] },
    channel: channelPayload(channel, guild.id),
    channel_id: channel.id,
    member: { user: input.user, roles: input.admin ? [guild.adminRoleId] : [], permissions: String(permissions), joined_at: new Date().toISOString(), deaf: false, mute: false, flags: 0, nick: null, avatar: null },
    app_permissions: String(MEMBER_PERMISSIONS),
    locale: 'en-US',
    guild_locale: 'en-US',
    entitlements: [],
    authorizing_integration_owners: { '0': guild.id },
    context: 0,
    attachment_size_limit: input.attachmentSizeLimit,
    data: {
      id: definition.id,
      name: definition.name,
      type: 1,
      guild_id: definition.guild_id,
      options: input.subcommand !== undefined ? [{ type: ApplicationCommandOptionType.Subcommand, name: input.subcommand, options: values }] : values,
      resolved,
    },
  };
}

export async function bytesBody(request: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
