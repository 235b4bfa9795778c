import type { FaqEntry } from './faq/entry.js';
import type { FaqStore } from './faq/faq-store.js';
import { decideAnswer } from './answer-policy.js';
import { type PromptParts, fitPromptParts, formatPrompt } from './prompt-format.js';
import { questionVariants } from './training-examples.js';

/**
 * The regression gate: a model is scored with the full answer policy on every FAQ question
 * and on held-out rewordings (variants that fine-tuning did not use), beside the live model.
 * An answer counts when it matches the entry's answer after normalization.
 */
export interface GateScore {
  readonly questions: number;
  readonly correct: number;
  readonly heldOut: number;
  readonly heldOutCorrect: number;
  /** Correct answers over all asked, in [0, 1]. */
  readonly score: number;
}

export interface GateReport {
  readonly candidate: GateScore;
  readonly current: GateScore | null;
  readonly promote: boolean;
  readonly reason: string;
}

export interface GateSettings {
  readonly topK: number;
  readonly confidentMatch: number;
  readonly relevantMatch: number;
  readonly instructions: string;
  /** Variants per question used in training; the ones after them are held out. */
  readonly trainedVariants: number;
  readonly heldOutVariants: number;
}

export type Generate = (prompt: string) => Promise<string>;

export async function scoreModel(
  faq: FaqStore,
  entries: readonly FaqEntry[],
  generate: Generate,
  settings: GateSettings,
  promptBudget: number,
  countTokens: (text: string) => number,
): Promise<GateScore> {
  let questions = 0;
  let correct = 0;
  let heldOut = 0;
  let heldOutCorrect = 0;
  for (const entry of entries) {
    const askings = [
      { text: entry.question, held: false },
      ...questionVariants(entry.question)
        .slice(settings.trainedVariants, settings.trainedVariants + settings.heldOutVariants)
        .map((text) => ({ text, held: true })),
    ];
    for (const asking of askings) {
      const decision = await decideAnswer(faq, asking.text, settings, true);
      let answer: string;
      if (decision.path === 'faq') answer = decision.ranked[0].entry.answer;
      else if (decision.path === 'model') {
        const parts: PromptParts = { instructions: settings.instructions, faq: decision.ranked.map((hit) => hit.entry), history: [], message: asking.text };
        answer = await generate(formatPrompt(fitPromptParts(parts, promptBudget, countTokens)));
      } else answer = '';
      const right = sameAnswer(answer, entry.answer);
      if (asking.held) {
        heldOut++;
        if (right) heldOutCorrect++;
      } else {
        questions++;
        if (right) correct++;
      }
    }
  }
  const total = questions + heldOut;
  return { questions, correct, heldOut, heldOutCorrect, score: total === 0 ? 1 : (correct + heldOutCorrect) / total };
}

/** Promote when the candidate does not do worse; `force` and `hold` override (config). */
export function gateDecision(candidate: GateScore, current: GateScore | null, mode: 'auto' | 'force' | 'hold'): GateReport {
  if (mode === 'force') return { candidate, current, promote: true, reason: 'the gate is set to force promotion' };
  if (mode === 'hold') return { candidate, current, promote: false, reason: 'the gate is set to hold new versions; promote one with /model use' };
  if (!current) return { candidate, current, promote: true, reason: 'there is no live model to compare with' };
  const promote = candidate.score >= current.score;
  return {
    candidate,
    current,
    promote,
    reason: promote
      ? `it scores ${percent(candidate.score)} against ${percent(current.score)} for the live model`
      : `it scores ${percent(candidate.score)}, worse than the live model's ${percent(current.score)}; kept but not promoted`,
  };
}

export function percent(score: number): string {
  return `${Math.round(score * 1000) / 10}%`;
}

/** An answer counts as the entry's when it is the same text after normalizing case, spaces and the final stop. */
export function sameAnswer(given: string, expected: string): boolean {
  const normalize = (text: string) => text.normalize('NFKC').toLowerCase().replace(/\s+/gu, ' ').replace(/[.!\s]+$/u, '').trim();
  return normalize(given) === normalize(expected);
}
