import type { FaqEntry } from '../faq/entry.js';
import type { FaqStore } from '../faq/faq-store.js';
import { type Answer, type AnswerThresholds, answerQuestion } from '../conversation/answer-policy.js';
import { heldOutQuestions, splitAlternates } from './held-out-questions.js';
import { fitPromptParts, formatPrompt } from '../conversation/prompt-format.js';

/**
 * The regression gate: a model is asked, through the engine's whole answer policy (answer-policy.ts:
 * the same retrieval, certainty and grounding), every FAQ question as written and the held-out
 * questions that fine-tuning never saw (held-out-questions.ts), of an FAQ whose retrieval does
 * not know the held-out alternates either, beside the live model. Each
 * answer is right, wrong, or an abstention (the fallback); a wrong answer is worse than an
 * abstention, so the two are counted apart and a candidate that answers more questions wrong
 * than the live model is never promoted.
 */
export interface Tally {
  readonly asked: number;
  readonly correct: number;
  readonly wrong: number;
  readonly abstained: number;
}

export interface GateScore {
  /** Every entry's question as the FAQ writes it. */
  readonly originals: Tally;
  /** Held-out alternates and noisy questions. */
  readonly heldOut: Tally;
}

export interface GateReport {
  readonly candidate: GateScore;
  readonly current: GateScore | null;
  readonly promote: boolean;
  /** The decision and its figures, as a sentence. */
  readonly reason: string;
}

export interface GateSettings extends AnswerThresholds {
  readonly instructions: string;
  /** Noisy questions per entry asked besides its held-out alternates. */
  readonly heldOutQuestions: number;
}

export type Generate = (prompt: string) => Promise<string>;

type Verdict = 'correct' | 'wrong' | 'abstained';

export async function scoreModel(
  faq: FaqStore,
  entries: readonly FaqEntry[],
  generate: Generate,
  settings: GateSettings,
  promptBudget: number,
  countTokens: (text: string) => number,
): Promise<GateScore> {
  // Retrieval that knows the held-out alternates would answer them word for word from the FAQ.
  const unseen = await faq.searchView((entry) => splitAlternates(entry).trained);
  const ask = (text: string) =>
    answerQuestion(unseen, text, settings, (decision) =>
      generate(formatPrompt(fitPromptParts({ instructions: settings.instructions, faq: decision.ranked.map((hit) => hit.entry), history: [], message: text }, promptBudget, countTokens))),
    );
  const originals: Verdict[] = [];
  const heldOut: Verdict[] = [];
  for (const entry of entries) {
    originals.push(verdict(await ask(entry.question), entry));
    for (const question of heldOutQuestions(entry, settings.heldOutQuestions)) heldOut.push(verdict(await ask(question), entry));
  }
  return { originals: tally(originals), heldOut: tally(heldOut) };
}

function verdict(answer: Answer, expected: FaqEntry): Verdict {
  if (!answer.entry) return 'abstained';
  return sameAnswer(answer.entry.answer, expected.answer) ? 'correct' : 'wrong';
}

function tally(verdicts: readonly Verdict[]): Tally {
  const count = (kind: Verdict) => verdicts.filter((one) => one === kind).length;
  return { asked: verdicts.length, correct: count('correct'), wrong: count('wrong'), abstained: count('abstained') };
}

/**
 * auto: hold a candidate that answers more questions wrong than the live model, else promote
 * it when it answers as many right or more; `force` and `hold` override (config fineTune.gate).
 */
export function gateDecision(candidate: GateScore, current: GateScore | null, mode: 'auto' | 'force' | 'hold'): GateReport {
  const figures = `it answers ${describeScore(candidate)}${current ? `, against ${describeScore(current)} for the live model` : ''}`;
  const report = (promote: boolean, reason: string): GateReport => ({ candidate, current, promote, reason });
  if (mode === 'force') return report(true, `the gate is set to force promotion; ${figures}`);
  if (mode === 'hold') return report(false, `the gate is set to hold new versions; ${figures}; promote one with /model use`);
  if (!current) return report(true, `there is no live model to compare with; ${figures}`);
  const [wrong, liveWrong] = [total(candidate, 'wrong'), total(current, 'wrong')];
  if (wrong > liveWrong) return report(false, `it answers more questions wrong than the live model (${wrong} against ${liveWrong}); ${figures}; kept but not promoted`);
  const [right, liveRight] = [total(candidate, 'correct'), total(current, 'correct')];
  if (right < liveRight) return report(false, `it answers fewer questions right than the live model (${right} against ${liveRight}); ${figures}; kept but not promoted`);
  return report(true, figures);
}

function total(score: GateScore, kind: 'correct' | 'wrong'): number {
  return score.originals[kind] + score.heldOut[kind];
}

/** "40 right, 2 wrong, 3 abstained of 45 held-out questions and 15 right, 0 wrong, 0 abstained of 15 FAQ questions" */
export function describeScore(score: GateScore): string {
  const describe = (set: Tally, name: string) => `${set.correct} right, ${set.wrong} wrong, ${set.abstained} abstained of ${set.asked} ${name}`;
  return `${describe(score.heldOut, 'held-out questions')} and ${describe(score.originals, 'FAQ questions')}`;
}

/** An answer counts as the entry's when it is the same text after normalizing case, spaces and the final stop. */
export function sameAnswer(given: string, expected: string): boolean {
  const normalize = (text: string) => text.normalize('NFKC').toLowerCase().replace(/\s+/gu, ' ').replace(/[.!\s]+$/u, '').trim();
  return normalize(given) === normalize(expected);
}
