import { CodedError } from '../../coded-error.js';

/** Every failure the Slack adapter reports carries a stable code. */
export type SlackAdapterErrorCode =
  /** The configuration lacks what the chosen mode needs (tokens, signing secret). */
  | 'SLACK_CONFIG_INVALID'
  /** auth.test refused the bot token. */
  | 'SLACK_AUTH_FAILED'
  /** Socket Mode: the WebSocket to Slack did not come up in time. */
  | 'SLACK_UNREACHABLE'
  /** A shared file could not be described or downloaded. */
  | 'SLACK_FILE_UNAVAILABLE';

export class SlackAdapterError extends CodedError<SlackAdapterErrorCode> {}
