import { CodedError } from '../../coded-error.js';

/** Every failure the Discord adapter reports carries a stable code, so callers can branch on it. */
export type DiscordAdapterErrorCode =
  /** The engine's commands cannot be laid out as Discord slash commands. */
  | 'DISCORD_COMMAND_SHAPE'
  /** The adapter's options are inconsistent (e.g. a shard id outside the shard count). */
  | 'DISCORD_OPTIONS_INVALID'
  /** An attachment could not be downloaded from Discord. */
  | 'DISCORD_DOWNLOAD_FAILED';

export class DiscordAdapterError extends CodedError<DiscordAdapterErrorCode> {}
