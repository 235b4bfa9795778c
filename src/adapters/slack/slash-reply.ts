import { splitMessage } from '../split-message.js';
import { SLACK_MESSAGES, toSlackText } from './slack-text.js';

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

  async push(piece: string): Promise<void> {
    this.unsent += piece;
    if (Date.now() - this.lastSendAt >= this.options.progressMs && this.used < RESPONSE_URL_USES - 2) await this.send(1);
  }

  async finish(): Promise<void> {
    await this.send(RESPONSE_URL_USES - this.used);
  }

  private async send(budget: number): Promise<void> {
    const text = toSlackText(this.unsent);
    const limit = this.options.maxChars ?? SLACK_MESSAGES.limit;
    let parts = splitMessage(text, { ...SLACK_MESSAGES, limit });
    // With every use spent (a note after a reply that took them all), Slack would refuse one more.
    if (parts.length === 0 || budget < 1) return;
    this.unsent = '';
    if (parts.length > budget) {
      parts = splitMessage(text, { ...SLACK_MESSAGES, limit: limit - TRUNCATION_NOTE_ROOM });
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
