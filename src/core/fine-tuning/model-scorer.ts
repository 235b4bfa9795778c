import { LanguageModel, type LoadOptions } from '../../model/runtime/language-model.js';
import { ModelError } from '../../model/errors.js';
import { readConfig } from '../../model/files/model-files.js';
import type { Tokenizer } from '../../model/files/tokenizer.js';
import type { FaqStore } from '../faq/faq-store.js';
import { generatedText, type LiveModel } from '../serving/live-model.js';
import { REPLY_STOPS } from '../conversation/prompt-format.js';
import { describeScore, type GateScore, type GateSettings, scoreModel } from './regression-gate.js';
import type { KeyValueStore } from '../storage/document-store.js';

const GATE_GENERATION = { greedy: true, maxNewTokens: 96, stop: [...REPLY_STOPS] };

/**
 * The regression gate's questions put to a model: the live one (through whatever serves it,
 * so no second copy is loaded) or a candidate folder loaded for the occasion. Each version's
 * last figures are kept in the store, for the local chat page and for every instance.
 */
export interface Evaluation {
  readonly version: string;
  /** The scope of the FAQ whose questions were asked. */
  readonly faq: string;
  /** ISO 8601. */
  readonly at: string;
  readonly score: GateScore;
}

export interface LiveEvaluation {
  /** null before the first load. */
  readonly version: string | null;
  /** The live version's last evaluation; null when it has none yet. */
  readonly evaluation: Evaluation | null;
}

export class ModelScorer {
  constructor(
    private readonly live: LiveModel,
    private readonly tokenizer: Tokenizer,
    private readonly settings: GateSettings,
    private readonly store: KeyValueStore,
  ) {}

  /** `model eval`, and the gate's "current" side: scored and kept; null when no version is live. */
  async scoreLive(faq: FaqStore): Promise<Evaluation | null> {
    const version = this.live.version;
    if (!version) return null;
    const positions = this.live.info?.config.n_positions ?? 1024;
    const score = await this.score(
      faq,
      (prompt) => {
        const stream = this.live.generate(prompt, GATE_GENERATION);
        if (!stream) throw new ModelError('MODEL_NOT_FOUND', 'the live model was unloaded while it was being scored');
        return generatedText(stream);
      },
      positions,
    );
    const evaluation: Evaluation = { version, faq: faq.scope, at: new Date().toISOString(), score };
    await this.record(evaluation);
    return evaluation;
  }

  async scoreCandidate(faq: FaqStore, dir: string, loadOptions: LoadOptions): Promise<GateScore> {
    const config = await readConfig(dir);
    const model = await LanguageModel.load(dir, loadOptions);
    try {
      return await this.score(faq, (prompt) => generatedText(model.generate(prompt, GATE_GENERATION)), config.n_positions);
    } finally {
      await model.close();
    }
  }

  /** Keeps `evaluation` as its version's last. */
  async record(evaluation: Evaluation): Promise<void> {
    await this.store.set(evaluationKey(evaluation.version), evaluation);
  }

  async liveEvaluation(): Promise<LiveEvaluation> {
    const version = this.live.version;
    if (!version) return { version, evaluation: null };
    return { version, evaluation: ((await this.store.get(evaluationKey(version))) as Evaluation | undefined) ?? null };
  }

  private async score(faq: FaqStore, generate: (prompt: string) => Promise<string>, positions: number): Promise<GateScore> {
    return scoreModel(faq, await faq.entries(), generate, this.settings, promptBudget(positions), (text) => this.tokenizer.encode(text).length);
  }
}

/** The live version's figures in a sentence, for /model eval and the local chat page. */
export function describeLiveEvaluation(live: LiveEvaluation): string {
  if (!live.version) return 'No model is live yet.';
  if (!live.evaluation) return `Live model ${live.version}: not evaluated yet; /model eval scores it.`;
  const { score, at, faq } = live.evaluation;
  return `Live model ${live.version} answers ${describeScore(score)} (FAQ ${faq}, ${at.slice(0, 16).replace('T', ' ')} UTC).`;
}

function evaluationKey(version: string): string {
  return `model-evaluation:${version}`;
}

/** Prompt tokens for a context of `positions`: the rest is room for the answer. */
export function promptBudget(positions: number): number {
  return positions - Math.max(32, Math.min(128, Math.floor(positions / 3)));
}
