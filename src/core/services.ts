import type { Logger } from '../log.js';
import type { Tokenizer } from '../model/files/tokenizer.js';
import type { AnswerFeedback } from './conversation/feedback.js';
import type { FaqStore } from './faq/faq-store.js';
import type { FineTunes } from './fine-tuning/fine-tune-jobs.js';
import type { Inbox } from './conversation/inbox.js';
import type { ConversationMemory } from './conversation/memory.js';
import type { IncomingMessage } from './conversation/message.js';
import type { BotMetrics } from './metrics.js';
import type { LiveModel } from './serving/live-model.js';
import type { ModelRegistry } from './serving/model-registry.js';
import type { ModelRollout } from './serving/model-rollout.js';
import type { ModelScorer } from './fine-tuning/model-scorer.js';
import type { EngineSettings } from './conversation/engine-settings.js';

/** What the engine and its commands work with; the app (app.ts) builds it from config. */
export interface EngineServices {
  readonly settings: EngineSettings;
  faqFor(message: IncomingMessage): FaqStore;
  inboxFor(message: IncomingMessage): Inbox;
  /** Thumbs-up and thumbs-down reactions on answers, which adapters report. */
  readonly feedback: AnswerFeedback;
  readonly memory: ConversationMemory;
  readonly model: LiveModel;
  readonly registry: ModelRegistry;
  /** Makes a version live here and on every instance sharing the store. */
  readonly rollout: ModelRollout;
  readonly jobs: FineTunes;
  /** The regression gate's questions put to the live model: `model eval`. */
  readonly scorer: ModelScorer;
  /** The served model's tokenizer, for token budgets (GPT-2's BPE for every version). */
  readonly tokenizer: Tokenizer;
  readonly logger: Logger;
  readonly metrics: BotMetrics;
}
