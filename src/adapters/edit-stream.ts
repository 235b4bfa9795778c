import { type MessageFormat, splitMessage } from './split-message.js';

/** The platform calls that show a reply's messages: post them, then edit them as the reply grows. */
export interface EditableMessages {
  /** Shows message `index` of the reply (0 is the first) for the first time; resolves to its id. */
  post(index: number, text: string): Promise<string>;
  /** Replaces the text of a message posted before: message `index` of the reply, whose id post gave. */
  edit(message: { readonly index: number; readonly id: string }, text: string): Promise<void>;
}

export interface EditStreamOptions {
  /** How the platform's messages are cut (splitMessage). */
  readonly format: MessageFormat;
  /** The least time between two rounds of posts and edits: the platforms rate-limit edits, about one a second. */
  readonly intervalMs: number;
  /** The reply's text as the platform writes it (Slack's mrkdwn), applied to the whole text before it is split. */
  readonly render?: (text: string) => string;
  /** Told the id of each message the reply posts, as it is posted. */
  readonly onPosted?: (messageId: string) => void;
}

/**
 * A reply as it streams in, shown by posting and editing: the first text is posted at once;
 * what arrives after is shown in rounds, each an interval after the last call of the one before, touching only the
 * messages whose text changed; text past the limit goes on in new messages. The first failure
 * to post or edit ends the rounds, and finish() rethrows it.
 */
export class EditStream {
  private text = '';
  private readonly shown: { id: string; text: string }[] = [];
  private lastRoundAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;
  private round: Promise<void> | null = null;
  private finishing = false;
  private failure: { error: unknown } | null = null;

  constructor(
    private readonly messages: EditableMessages,
    private readonly options: EditStreamOptions,
  ) {}

  /** How many messages the reply has shown so far. */
  get messageCount(): number {
    return this.shown.length;
  }

  push(piece: string): void {
    this.text += piece;
    this.schedule();
  }

  /** After a failure mid-reply: `note` goes on a line after whatever was already said, and the reply finishes. */
  async fail(note: string): Promise<void> {
    const said = this.text.trimEnd();
    this.text = said ? `${said}\n${note}` : note;
    await this.finish();
  }

  /**
   * Shows the rest (waiting out the interval), then rethrows the first failure to post or edit,
   * if any. Text pushed after it is shown by the next finish().
   */
  async finish(): Promise<void> {
    this.finishing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.round) await this.round;
    if (this.pending()) {
      const wait = this.lastRoundAt + this.options.intervalMs - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      await this.show();
    }
    if (this.failure) throw this.failure.error;
  }

  private schedule(): void {
    if (this.timer || this.round || this.finishing || this.failure) return;
    const wait = Math.max(0, this.lastRoundAt + this.options.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.round = this.show().finally(() => {
        this.round = null;
        if (this.pending()) this.schedule();
      });
    }, wait);
  }

  private split(): string[] {
    const { render, format } = this.options;
    return splitMessage(render ? render(this.text) : this.text, format);
  }

  private pending(): boolean {
    return !this.failure && this.split().some((message, i) => this.shown[i]?.text !== message);
  }

  private async show(): Promise<void> {
    if (this.failure) return;
    try {
      for (const [i, message] of this.split().entries()) {
        const shown = this.shown[i];
        if (!shown) {
          const id = await this.messages.post(i, message);
          this.shown[i] = { id, text: message };
          this.options.onPosted?.(id);
        } else if (shown.text !== message) {
          await this.messages.edit({ index: i, id: shown.id }, message);
          shown.text = message;
        }
      }
    } catch (error) {
      this.failure = { error };
    }
    // Timed from the round's last call, not its first: a message posted late in a slow round
    // is then still edited at most once an interval.
    this.lastRoundAt = Date.now();
  }
}
