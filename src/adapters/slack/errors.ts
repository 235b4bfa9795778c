/** Every failure the Slack adapter reports carries a stable code. */
export type SlackAdapterErrorCode =
  /** The configuration lacks what the chosen mode needs (tokens, signing secret). */
  | 'SLACK_CONFIG_INVALID'
  /** auth.test refused the bot token. */
  | 'SLACK_AUTH_FAILED'
  /** A shared file could not be described or downloaded. */
  | 'SLACK_FILE_UNAVAILABLE';

export class SlackAdapterError extends Error {
  readonly code: SlackAdapterErrorCode;

  constructor(code: SlackAdapterErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SlackAdapterError';
    this.code = code;
  }
}
