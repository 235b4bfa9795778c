import { LanguageModel, type LoadOptions } from '../model/language-model.js';
import { ModelError } from '../model/errors.js';
import { readConfig } from '../model/model-files.js';
import type { Tokenizer } from '../model/tokenizer.js';
import type { FaqStore } from './faq/faq-store.js';
import type { LiveModel } from './live-model.js';
import { REPLY_STOPS } from './prompt-format.js';
import { type GateScore, type GateSettings, scoreModel } from './regression-gate.js';

const GATE_GENERATION = { greedy: true, maxNewTokens: 96, stop: [...REPLY_STOPS] };

/**
 * The regression gate's questions put to a model: the live one (through whatever serves it,
 * so no second copy is loaded) or a candidate folder loaded for the occasion.
 */
export class ModelScorer {
  constructor(
    private readonly live: LiveModel,
    private readonly tokenizer: Tokenizer,
    private readonly settings: GateSettings,
  ) {}

  /** `model eval`, and the gate's "current" side; null when no version is live. */
  async scoreLive(faq: FaqStore): Promise<{ version: string; score: GateScore } | null> {
    const version = this.live.version;
    if (!version) return null;
    const positions = this.live.info?.config.n_positions ?? 1024;
    const score = await this.score(
      faq,
      (prompt) => {
        const stream = this.live.generate(prompt, GATE_GENERATION);
        if (!stream) throw new ModelError('MODEL_NOT_FOUND', 'the live model was unloaded while it was being scored');
        return collect(stream);
      },
      positions,
    );
    return { version, score };
  }

  async scoreCandidate(faq: FaqStore, dir: string, loadOptions: LoadOptions): Promise<GateScore> {
    const config = await readConfig(dir);
    const model = await LanguageModel.load(dir, loadOptions);
    try {
      return await this.score(faq, (prompt) => collect(model.generate(prompt, GATE_GENERATION)), config.n_positions);
    } finally {
      await model.close();
    }
  }

  private async score(faq: FaqStore, generate: (prompt: string) => Promise<string>, positions: number): Promise<GateScore> {
    return scoreModel(faq, await faq.entries(), generate, this.settings, promptBudget(positions), (text) => this.tokenizer.encode(text).length);
  }
}

async function collect(stream: AsyncIterable<string>): Promise<string> {
  let text = '';
  for await (const piece of stream) text += piece;
  return text.trim();
}

/** Prompt tokens for a context of `positions`: the rest is room for the answer. */
export function promptBudget(positions: number): number {
  return positions - Math.max(32, Math.min(128, Math.floor(positions / 3)));
}
