import type { AnsweringEngine } from '../core/conversation/adapter.js';
import type { AnswerOutcome } from '../core/conversation/engine.js';
import { type AnswerFeedback, messageKey, type PostedMessage, type ReactionOutcome, type Vote } from '../core/conversation/feedback.js';
import { type IncomingMessage, userKey } from '../core/conversation/message.js';
import type { Logger } from '../log.js';

/** One reply as an adapter posts it: each message as it is posted, then the end. */
export interface TrackedReply {
  posted(messageId: string): void;
  /** Remembers the reply when the engine answered a question with it; never throws (a failure is logged). */
  finished(): Promise<void>;
}

/**
 * An adapter's side of feedback reactions. The engine tells which messages it answered (by the
 * message object the adapter handed it, held weakly); the adapter tells which messages it posted
 * for each; together they make a remembered answer. Reactions go to AnswerFeedback one at a
 * time, in the order they came (a quick add and remove must not swap), and a reaction on a reply
 * still under way (streaming, or its later parts still being posted) waits until that reply is
 * remembered, or turns out not to be an answer.
 */
export class ReactionFeedback {
  private readonly outcomes = new WeakMap<IncomingMessage, AnswerOutcome>();
  /** Replies under way, by messageKey of each message posted so far: settled once remembered (or not an answer). */
  private readonly underWay = new Map<string, Promise<void>>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly unsubscribe: () => void;

  constructor(
    engine: AnsweringEngine,
    private readonly feedback: AnswerFeedback,
    private readonly logger: Logger,
  ) {
    this.unsubscribe = engine.onAnswer((outcome, message) => this.outcomes.set(message, outcome));
  }

  /** Tracks the reply to `incoming`, posted in `channel`. */
  track(incoming: IncomingMessage, channel: string): TrackedReply {
    const place = { platform: incoming.platform, workspace: incoming.scope.workspace, channel };
    const messages: PostedMessage[] = [];
    let settle = () => {};
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    return {
      posted: (messageId) => {
        const message = { ...place, messageId };
        messages.push(message);
        this.underWay.set(messageKey(message), settled);
      },
      finished: async () => {
        try {
          const outcome = this.outcomes.get(incoming);
          if (outcome && messages.length > 0) {
            await this.feedback.remember(messages, { question: outcome.question, askedBy: userKey(incoming), path: outcome.path, entryId: outcome.entryId });
          }
        } catch (error) {
          this.logger.warn({ err: error, platform: place.platform, channel }, 'could not remember an answer for feedback: reactions on it will be ignored');
        } finally {
          for (const message of messages) this.underWay.delete(messageKey(message));
          settle();
        }
      },
    };
  }

  /**
   * `user` added (`stands`) or removed the reaction `vote` on `message`. A reaction on a reply
   * under way waits for it outside the queue, so that a long one (a fine-tune's progress) holds
   * up no other reactions; those waiting on one reply join the queue in the order they came.
   */
  react(message: PostedMessage, vote: Vote, user: string, stands: boolean): Promise<ReactionOutcome> {
    const enqueue = () => {
      const handled = this.queue.then(() => (stands ? this.feedback.react(message, vote, user) : this.feedback.withdraw(message, vote, user)));
      this.queue = handled.catch(() => undefined);
      return handled;
    };
    const reply = this.underWay.get(messageKey(message));
    return reply ? reply.then(enqueue) : enqueue();
  }

  close(): void {
    this.unsubscribe();
  }
}
