import type { AnswerPath } from './answer-policy.js';
import type { Inbox } from './inbox.js';
import type { BotMetrics, FeedbackKind } from '../metrics.js';
import type { KeyValueStore } from '../storage/document-store.js';
import { StorageError } from '../storage/storage-error.js';

/**
 * Thumbs-up and thumbs-down reactions on the bot's answers. An adapter remembers each answer it
 * posted (its messages and what was asked) and reports the reactions on them: each user's first
 * vote of a kind on an answer is counted (tunebot_feedback_total), and a thumbs-down puts the
 * question in the admins' inbox. Answers are kept per FAQ scope in one document, as the inbox
 * is, and updated atomically, so that instances sharing a store agree; answers older than the
 * lifetime or past the capacity are forgotten, and reactions on them ignored.
 */
export type Vote = FeedbackKind;

/** A message the bot posted, as a reaction event names it. */
export interface PostedMessage {
  readonly platform: string;
  /** As the question's scope had it: a Discord guild ("dm" outside one), a Slack workspace. */
  readonly workspace: string;
  /** Where the message is: a channel, a DM, or on Discord a thread. */
  readonly channel: string;
  readonly messageId: string;
}

/** An answer, as feedback on it needs it. */
export interface GivenAnswer {
  readonly question: string;
  /** The asker's userKey. */
  readonly askedBy: string;
  readonly path: AnswerPath;
  /** The FAQ entry the answer came from, when it came from one. */
  readonly entryId: string | null;
}

interface RememberedAnswer extends GivenAnswer {
  /** Its messages (a long answer takes several), by messageKey. */
  readonly messages: readonly string[];
  /** When it was remembered, in ms since the epoch. */
  readonly at: number;
  /**
   * `kind:user` for each vote counted: true while the reaction stands, false once removed. A
   * removed vote is kept so that adding it again is not counted twice.
   */
  readonly votes: Readonly<Record<string, boolean>>;
}

/**
 * What a reaction came to. counted: a user's first vote of its kind on the answer. restored: a
 * removed vote added again (not counted again). withdrawn: a standing vote removed. unchanged:
 * a vote that already stood, the removal of one that did not, or a new voter on an answer that
 * has all the voters it keeps. unknown: not an answer the bot remembers.
 */
export type ReactionOutcome = 'counted' | 'restored' | 'withdrawn' | 'unchanged' | 'unknown';

export interface FeedbackScopes {
  /** The FAQ scope a workspace's answers and inbox belong to (config faq.scope). */
  scopeKeyOf(platform: string, workspace: string): string;
  inboxOf(scopeKey: string): Inbox;
}

export interface FeedbackLimits {
  /** How long an answer takes reactions. */
  readonly lifetimeMs: number;
  /** The answers kept per FAQ scope, newest first. */
  readonly capacity: number;
  /** The votes one answer keeps: a hugely popular answer stops counting new voters. */
  readonly votesPerAnswer: number;
}

export const DEFAULT_FEEDBACK_LIMITS: FeedbackLimits = { lifetimeMs: 7 * 24 * 3_600_000, capacity: 500, votesPerAnswer: 200 };

export class AnswerFeedback {
  constructor(
    private readonly store: KeyValueStore,
    private readonly scopes: FeedbackScopes,
    private readonly metrics: BotMetrics,
    private readonly limits: FeedbackLimits = DEFAULT_FEEDBACK_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Remembers `answer` as posted in `messages` (one place: the same platform, workspace and channel). */
  async remember(messages: readonly PostedMessage[], answer: GivenAnswer): Promise<void> {
    const [first] = messages;
    if (!first) throw new RangeError('an answer to remember needs the messages it was posted in');
    if (messages.some((message) => message.platform !== first.platform || message.workspace !== first.workspace || message.channel !== first.channel)) {
      throw new RangeError(`an answer's messages are in one channel; got ${[...new Set(messages.map(messageKey))].join(', ')}`);
    }
    const at = this.now();
    const remembered: RememberedAnswer = { question: answer.question, askedBy: answer.askedBy, path: answer.path, entryId: answer.entryId, messages: messages.map(messageKey), at, votes: {} };
    await this.update(first, at, (answers) => ({ answers: [...answers, remembered].slice(-this.limits.capacity), result: undefined }));
  }

  /** `user` added the reaction `vote` on `message`. */
  react(message: PostedMessage, vote: Vote, user: string): Promise<ReactionOutcome> {
    return this.vote(message, vote, user, true);
  }

  /** `user` removed the reaction `vote` from `message`: the vote no longer stands (it stays counted). */
  withdraw(message: PostedMessage, vote: Vote, user: string): Promise<ReactionOutcome> {
    return this.vote(message, vote, user, false);
  }

  /** The votes standing on a workspace's remembered answers, by the FAQ entry that gave the answer. */
  async tallies(platform: string, workspace: string): Promise<Map<string, Record<Vote, number>>> {
    const at = this.now();
    const answers = this.live(await this.store.get(this.keyOf(platform, workspace)), at);
    const tallies = new Map<string, Record<Vote, number>>();
    for (const answer of answers) {
      if (answer.entryId === null) continue;
      const tally = tallies.get(answer.entryId) ?? { up: 0, down: 0 };
      for (const [voter, stands] of Object.entries(answer.votes)) if (stands) tally[voter.startsWith('up:') ? 'up' : 'down'] += 1;
      tallies.set(answer.entryId, tally);
    }
    return tallies;
  }

  private async vote(message: PostedMessage, vote: Vote, user: string, stands: boolean): Promise<ReactionOutcome> {
    const at = this.now();
    const key = messageKey(message);
    const voter = `${vote}:${user}`;
    const { outcome, answer } = await this.update<{ outcome: ReactionOutcome; answer: RememberedAnswer | null }>(message, at, (answers) => {
      const index = answers.findIndex((candidate) => candidate.messages.includes(key));
      const found = answers[index];
      if (!found) return { result: { outcome: 'unknown', answer: null } };
      const before = found.votes[voter];
      const full = before === undefined && Object.keys(found.votes).length >= this.limits.votesPerAnswer;
      const outcome: ReactionOutcome = stands ? (before === undefined ? (full ? 'unchanged' : 'counted') : before ? 'unchanged' : 'restored') : before ? 'withdrawn' : 'unchanged';
      if (outcome === 'unchanged') return { result: { outcome, answer: found } };
      return { answers: answers.with(index, { ...found, votes: { ...found.votes, [voter]: stands } }), result: { outcome, answer: found } };
    });
    if (outcome === 'counted' && answer) {
      this.metrics.feedbackCounted(vote);
      if (vote === 'down') {
        const inbox = this.scopes.inboxOf(this.scopes.scopeKeyOf(message.platform, message.workspace));
        await inbox.add({ question: answer.question, askedBy: answer.askedBy, at: new Date(at).toISOString(), reason: 'thumbs-down', ...(answer.entryId ? { entryId: answer.entryId } : {}) });
      }
    }
    return outcome;
  }

  /**
   * Changes the answers of `message`'s FAQ scope atomically: `change` sees the live ones
   * (expired ones dropped) and returns new answers to store, or none to leave them as they are.
   */
  private update<T>(message: PostedMessage, at: number, change: (answers: RememberedAnswer[]) => { answers?: RememberedAnswer[]; result: T }): Promise<T> {
    return this.store.update(this.keyOf(message.platform, message.workspace), (stored) => {
      const { answers, result } = change(this.live(stored, at));
      return answers ? { value: answers, result } : { result };
    });
  }

  private live(stored: unknown, at: number): RememberedAnswer[] {
    if (stored === undefined) return [];
    if (!Array.isArray(stored)) throw new StorageError('STORAGE_CORRUPT', `the answers kept for feedback are not a list (found ${typeof stored})`);
    return (stored as RememberedAnswer[]).filter((answer) => at - answer.at < this.limits.lifetimeMs);
  }

  private keyOf(platform: string, workspace: string): string {
    return `feedback:${this.scopes.scopeKeyOf(platform, workspace)}`;
  }
}

/** A posted message's key, unique across platforms and workspaces (which may share one FAQ scope). */
export function messageKey(message: PostedMessage): string {
  return `${message.platform}/${message.workspace}/${message.channel}/${message.messageId}`;
}
