import { setTimeout as sleep } from 'node:timers/promises';
import { toSlackText } from './slack-text.js';
import { SLACK_SECTION_LIMIT, splitSlackMessage } from './split-message.js';

/**
 * A reply in a conversation, streamed the way Slack allows: chat.postMessage as soon as there
 * is text, then chat.update with the text so far at most once per interval (chat.update is
 * rate-limited per workspace, about one call a second sustained), and a last update when the
 * reply ends. A reply over the section limit continues in further messages of the same thread.
 */
export interface ConversationPoster {
  /** Posts a message; resolves to its ts. */
  post(text: string): Promise<string>;
  update(ts: string, text: string): Promise<void>;
}

export interface StreamOptions {
  readonly intervalMs: number;
  readonly maxChars?: number;
}

export class StreamedReply {
  private text = '';
  private readonly sent: { ts: string; text: string }[] = [];
  private lastSendAt = Number.NEGATIVE_INFINITY;
  private dirty = false;

  constructor(
    private readonly poster: ConversationPoster,
    private readonly options: StreamOptions,
  ) {}

  async add(piece: string): Promise<void> {
    this.text += piece;
    this.dirty = true;
    if (Date.now() - this.lastSendAt >= this.options.intervalMs) await this.send();
  }

  /** Sends what is left, waiting out the interval first so that no message is updated faster. */
  async end(): Promise<void> {
    if (!this.dirty) return;
    const wait = this.lastSendAt + this.options.intervalMs - Date.now();
    if (wait > 0) await sleep(wait);
    await this.send();
  }

  /** After a failure mid-answer: the note goes after whatever was already shown. */
  async fail(note: string): Promise<void> {
    this.text = this.text.trim() ? `${this.text.trimEnd()}\n\n${note}` : note;
    this.dirty = true;
    await this.end();
  }

  private async send(): Promise<void> {
    const parts = splitSlackMessage(toSlackText(this.text.trim()), this.options.maxChars ?? SLACK_SECTION_LIMIT);
    if (parts.length === 0) return;
    for (const [i, part] of parts.entries()) {
      const previous = this.sent[i];
      if (!previous) this.sent.push({ ts: await this.poster.post(part), text: part });
      else if (previous.text !== part) {
        await this.poster.update(previous.ts, part);
        previous.text = part;
      }
    }
    this.lastSendAt = Date.now();
    this.dirty = false;
  }
}

/**
 * A slash command's reply, through its response_url: Slack takes five responses within 30
 * minutes, so the reply goes out when the command ends, and a long-running one (a fine-tune)
 * reports what it has said so far every `progressMs` while it keeps two responses in hand.
 */
export interface SlashResponder {
  respond(text: string): Promise<void>;
}

export const RESPONSE_URL_USES = 5;
const TRUNCATION_NOTE_ROOM = 200;

export class SlashReply {
  private unsent = '';
  private lastSendAt = Date.now();
  private used = 0;

  constructor(
    private readonly responder: SlashResponder,
    private readonly options: { readonly progressMs: number; readonly maxChars?: number },
  ) {}

  async add(piece: string): Promise<void> {
    this.unsent += piece;
    if (Date.now() - this.lastSendAt >= this.options.progressMs && this.used < RESPONSE_URL_USES - 2) await this.send(1);
  }

  async end(): Promise<void> {
    await this.send(RESPONSE_URL_USES - this.used);
  }

  private async send(budget: number): Promise<void> {
    const text = toSlackText(this.unsent);
    const maxChars = this.options.maxChars ?? SLACK_SECTION_LIMIT;
    let parts = splitSlackMessage(text, maxChars);
    // With every use spent (a note after a reply that took them all), Slack would refuse one more.
    if (parts.length === 0 || budget < 1) return;
    this.unsent = '';
    if (parts.length > budget) {
      parts = splitSlackMessage(text, maxChars - TRUNCATION_NOTE_ROOM);
      const left = parts.length - budget;
      parts = [...parts.slice(0, budget - 1), `${parts[budget - 1]}\n\n(${left} more part${left === 1 ? '' : 's'} not shown: Slack lets a slash command answer ${RESPONSE_URL_USES} times. Ask me in a direct message for the whole reply.)`];
    }
    for (const part of parts) {
      await this.responder.respond(part);
      this.used += 1;
    }
    this.lastSendAt = Date.now();
  }
}
