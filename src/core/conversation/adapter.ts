import type { AnswerListener } from './engine.js';
import type { IncomingMessage } from './message.js';
import type { ReplyPart } from './reply.js';

/**
 * The contract between the core and the ways in to it (Discord, Slack, the local web chat, the
 * terminal chat): what an adapter calls on the engine, and how the CLI starts and stops one.
 */

/** What adapters use of the conversation engine; ConversationEngine is one. */
export interface ChatEngine {
  /** The reply to `message`, streamed: text pieces, and the files a command attaches. */
  handle(message: IncomingMessage): AsyncIterable<ReplyPart>;
  /**
   * Calls `listener` after each answered question, with the message handle() was given;
   * returns the unsubscribe function. Feedback reactions need it; an engine may leave it out.
   */
  onAnswer?(listener: AnswerListener): () => void;
}

/** An engine that tells which questions it answered. */
export type AnsweringEngine = ChatEngine & Required<Pick<ChatEngine, 'onAnswer'>>;

export function tellsAnswers(engine: ChatEngine): engine is AnsweringEngine {
  return typeof engine.onAnswer === 'function';
}

/** A way in to the bot, started once and stopped once. */
export interface Adapter {
  /** What it is, for the log: "Discord", "Slack", "local chat", "terminal chat". */
  readonly name: string;
  /** Connects or listens; resolves once it takes messages, rejects (leaving nothing running) when it cannot. */
  start(): Promise<void>;
  /** Stops taking messages, and resolves once the replies under way are done. */
  stop(): Promise<void>;
}
