import type { ReplyFile } from '../../core/reply.js';
import { DISCORD_MESSAGE_LIMIT, splitDiscordMessage } from './split-message.js';

/** Where a reply's messages go: a channel, or an interaction's reply and follow-ups. */
export interface ReplySink {
  /** Shows message `index` of the reply (0 is the first) for the first time; resolves to its id. */
  post(index: number, text: string): Promise<string>;
  /** Replaces the text of message `index`, posted before. */
  edit(index: number, text: string): Promise<void>;
  /** Shows message `index` for the first time, carrying `file` as an attachment and its title as the text; resolves to its id. */
  attach(index: number, file: ReplyFile): Promise<string>;
  /** The largest file, in bytes, that Discord takes here. */
  readonly uploadLimit: number;
}

export interface ReplyStreamOptions {
  readonly limit?: number;
  /** The least time between two rounds of edits (Discord rate-limits edits). */
  readonly intervalMs?: number;
  /** Told the id of each message the reply posts, as it is posted. */
  readonly onPosted?: (messageId: string) => void;
}

/**
 * A reply as it streams in: the first text is posted at once; what arrives after is shown by
 * editing, in rounds at most one interval apart, each touching only the messages whose text
 * changed; text past the limit goes on in new messages (split by splitDiscordMessage).
 */
export class ReplyStream {
  private text = '';
  private readonly shown: string[] = [];
  private lastRoundAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;
  private round: Promise<void> | null = null;
  private finishing = false;
  private failure: { error: unknown } | null = null;
  private readonly limit: number;
  private readonly intervalMs: number;
  private readonly onPosted: (messageId: string) => void;

  constructor(
    private readonly sink: ReplySink,
    options: ReplyStreamOptions = {},
  ) {
    this.limit = options.limit ?? DISCORD_MESSAGE_LIMIT;
    this.intervalMs = options.intervalMs ?? 1000;
    this.onPosted = options.onPosted ?? (() => {});
  }

  /** How many messages the reply has shown so far. */
  get messageCount(): number {
    return this.shown.length;
  }

  push(piece: string): void {
    this.text += piece;
    this.schedule();
  }

  /** Shows the rest (waiting out the interval), then rethrows the first failure to post or edit, if any. */
  async finish(): Promise<void> {
    this.finishing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.round) await this.round;
    if (this.pending()) {
      const wait = this.lastRoundAt + this.intervalMs - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      await this.show();
    }
    if (this.failure) throw this.failure.error;
  }

  private schedule(): void {
    if (this.timer || this.round || this.finishing || this.failure) return;
    const wait = Math.max(0, this.lastRoundAt + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.round = this.show().finally(() => {
        this.round = null;
        if (this.pending()) this.schedule();
      });
    }, wait);
  }

  private pending(): boolean {
    return !this.failure && splitDiscordMessage(this.text, this.limit).some((message, i) => this.shown[i] !== message);
  }

  private async show(): Promise<void> {
    if (this.failure) return;
    this.lastRoundAt = Date.now();
    const messages = splitDiscordMessage(this.text, this.limit);
    try {
      for (const [i, message] of messages.entries()) {
        if (i >= this.shown.length) this.onPosted(await this.sink.post(i, message));
        else if (this.shown[i] !== message) await this.sink.edit(i, message);
        this.shown[i] = message;
      }
    } catch (error) {
      this.failure = { error };
    }
  }
}
