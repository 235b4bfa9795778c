import { CodedError } from '../../coded-error.js';
import type { ChatEngine } from './adapter.js';
import { type AnswerDecision, type AnswerPath, answerQuestion } from './answer-policy.js';
import { type Command, CommandUsageError, findCommand, helpText } from '../commands/command.js';
import { commandLine, splitWords } from '../commands/parse.js';
import { errorReply } from './error-reply.js';
import type { IncomingMessage } from './message.js';
import { userKey } from './message.js';
import type { MessagePath } from '../metrics.js';
import { fitPromptParts, formatPrompt, REPLY_STOPS } from './prompt-format.js';
import { RateLimiter } from './rate-limit.js';
import type { ReplyPart } from './reply.js';
import type { EngineServices } from '../services.js';
import { generatedText } from '../serving/live-model.js';

/**
 * handle(message) -> the reply, streamed: text pieces, and the files a command attaches. In
 * order: empty and oversized messages and rate limits get a clear reply; commands are routed
 * (admin rights checked); anything else is answered by the policy in answer-policy.ts, and the
 * exchange goes to the user's memory.
 */
/** What answering a question came to: told to onAnswer listeners once the reply has ended. */
export interface AnswerOutcome {
  readonly path: AnswerPath;
  /** The FAQ entry the reply came from, when it came from one. */
  readonly entryId: string | null;
  /** The user's question, as answered. */
  readonly question: string;
  readonly reply: string;
  readonly seconds: number;
}

export type AnswerListener = (outcome: AnswerOutcome, message: IncomingMessage) => void;

export class ConversationEngine implements ChatEngine {
  private readonly limiter: RateLimiter;
  private readonly answerListeners = new Set<AnswerListener>();

  constructor(
    private readonly services: EngineServices,
    readonly commands: readonly Command[],
  ) {
    this.limiter = new RateLimiter(services.settings.rateLimit.perMinute, services.settings.rateLimit.burst);
  }

  /**
   * Calls `listener` after each answered question (not commands or refusals), with the message
   * object handle() was given, so an adapter can tie the outcome to the reply it posted.
   * Returns the unsubscribe function.
   */
  onAnswer(listener: AnswerListener): () => void {
    this.answerListeners.add(listener);
    return () => this.answerListeners.delete(listener);
  }

  isAdmin(message: IncomingMessage): boolean {
    return message.platformAdmin || this.services.settings.admins.includes(`${message.platform}:${message.user.id}`);
  }

  async *handle(message: IncomingMessage): AsyncIterable<ReplyPart> {
    const started = performance.now();
    // A reply abandoned by its reader (an early return) is not counted: it did not end.
    let path: MessagePath | null = null;
    try {
      path = yield* this.respond(message, started);
    } catch (error) {
      path = 'error';
      throw error;
    } finally {
      if (path) this.services.metrics.messageHandled(path, (performance.now() - started) / 1000);
    }
  }

  private async *respond(message: IncomingMessage, started: number): AsyncGenerator<ReplyPart, MessagePath> {
    const { settings } = this.services;
    const text = message.text.trim();
    if (!text) {
      yield message.attachments.length > 0 ? 'To import an FAQ file, send it with /faq import.' : 'Send me a question, or /help to see what I can do.';
      return 'refused';
    }
    if (text.length > settings.maxMessageChars) {
      yield `That message is ${text.length.toLocaleString('en')} characters long; I read up to ${settings.maxMessageChars.toLocaleString('en')}. Please ask a shorter question.`;
      return 'refused';
    }
    // Admins (the local chat's user among them) are not rate-limited: they run the bot.
    const wait = this.isAdmin(message) ? 0 : this.limiter.take(userKey(message));
    if (wait > 0) {
      yield `You are sending messages faster than I can answer. Please try again in ${wait} s.`;
      return 'refused';
    }
    const line = commandLine(text);
    if (line !== null) {
      yield* this.runCommand(message, line);
      return 'command';
    }
    return yield* this.answer(message, text, started);
  }

  private async *runCommand(message: IncomingMessage, line: string): AsyncIterable<ReplyPart> {
    const isAdmin = this.isAdmin(message);
    const found = findCommand(this.commands, splitWords(line));
    if (!found) {
      yield `I do not know the command "/${line.split(/\s+/u)[0]}".\n${helpText(this.commands, isAdmin)}`;
      return;
    }
    const { command, args } = found;
    if (command.admin && !isAdmin) {
      this.services.logger.warn({ user: userKey(message), command: command.words.join(' ') }, 'refused an admin command');
      yield `/${command.words.join(' ')} is for admins only. /help lists what you can use.`;
      return;
    }
    try {
      const reply = command.run({ message, args, isAdmin, services: this.services });
      if (reply instanceof Promise) yield await reply;
      else yield* reply;
    } catch (error) {
      // Users read coded errors' messages only; anything else is a bug, for the log (error-reply.ts).
      if (error instanceof CommandUsageError) yield `${error.message}\nUsage: /${command.usage}`;
      else {
        if (!(error instanceof CodedError)) this.services.logger.error({ err: error, user: userKey(message), command: command.words.join(' ') }, 'a command failed');
        yield errorReply(error);
      }
    }
  }

  private async *answer(message: IncomingMessage, text: string, started: number): AsyncGenerator<string, MessagePath> {
    const { settings, memory, model, tokenizer, logger } = this.services;
    const scope = { platform: message.platform, workspace: message.scope.workspace };
    const faq = this.services.faqFor(message);
    const history = await memory.recentTurns(scope, message.user.id, {
      maxTurns: settings.memory.maxTurns,
      maxTokens: settings.memory.maxTokens,
      countTokens: (turn) => tokenizer.encode(turn).length,
    });
    const recorded = memory.recordTurn(scope, message.user.id, { role: 'user', text, at: Date.now() });
    const generation = { ...settings.generation, stop: [...REPLY_STOPS, ...(settings.generation.stop ?? [])], signal: message.signal };
    const answer = await answerQuestion(
      faq,
      text,
      settings,
      // The model's reply is checked before anyone sees it (grounding.ts), so it is not streamed as it comes.
      model.version === null ? null : (decision) => generatedText(model.generate(this.prompt(decision, history, text), generation)),
    );
    const { decision, path, entry: answered } = answer;
    if (decision.path === 'model' && !answered) {
      logger.info({ user: userKey(message), chosen: answer.chosen?.id ?? null, best: decision.ranked[0]?.entry.id, generated: answer.generated?.slice(0, 200) }, 'the model did not confirm the best FAQ passage; falling back');
    }
    logger.info({ user: userKey(message), path, certainty: round(decision.certainty), hits: decision.ranked.slice(0, 3).map((hit) => ({ id: hit.entry.id, confidence: round(hit.confidence) })) }, 'answer path');
    const reply = answered ? answered.answer : settings.fallback;
    yield reply;
    if (path !== 'faq') {
      await this.services.inboxFor(message).add({ question: text, askedBy: userKey(message), at: new Date().toISOString(), bestScore: round(decision.certainty) });
    }
    if (settings.debug) yield `\n[debug: ${path}; certainty ${round(decision.certainty)}; ${decision.ranked.map((hit) => `${hit.entry.id} ${round(hit.confidence)}`).join(', ') || 'no hits'}]`;
    await recorded;
    await memory.recordTurn(scope, message.user.id, { role: 'assistant', text: reply, at: Date.now() });
    const outcome: AnswerOutcome = { path, entryId: answered?.id ?? null, question: text, reply, seconds: (performance.now() - started) / 1000 };
    for (const listener of this.answerListeners) listener(outcome, message.via ?? message);
    return path;
  }

  private prompt(decision: AnswerDecision, history: readonly { role: 'user' | 'assistant'; text: string }[], text: string): string {
    const { settings, tokenizer, model } = this.services;
    const context = model.info?.config.n_positions ?? 1024;
    const maxNewTokens = settings.generation.maxNewTokens ?? 64;
    const parts = fitPromptParts(
      { instructions: settings.instructions, faq: decision.ranked.map((hit) => hit.entry), history, message: text },
      Math.max(16, context - maxNewTokens),
      (prompt) => tokenizer.encode(prompt).length,
    );
    return formatPrompt(parts);
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
