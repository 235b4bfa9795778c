/**
 * The answer-quality curve behind bench:answer-curve: what a confidence threshold buys. At a
 * threshold t the engine answers with its best hit when retrieval's certainty is at least t and
 * abstains below it (the model path between relevantMatch and confidentMatch is left out). Over
 * the held-out paraphrases each t gives the share answered, answered right and answered wrong;
 * over the unanswerable questions, the share answered at all (every such answer is wrong).
 *
 * Input: the lines that `npm run bench:answers -- --dump FILE` writes, one question each.
 */
import { z } from 'zod';
import { CodedError } from '../src/coded-error.js';

export class AnswerCurveError extends CodedError<'DUMP_INVALID' | 'OPTIONS_INVALID'> {}

const dumpLineSchema = z.object({
  stage: z.string(),
  set: z.string(),
  expected: z.string().nullable(),
  certainty: z.number().min(0).max(1),
  hits: z.array(z.object({ id: z.string() })),
});

export type DumpLine = z.infer<typeof dumpLineSchema>;

/** Every non-blank line of a dump, checked; a bad one is a DUMP_INVALID error naming source:line and the field. */
export function parseDump(text: string, source: string): DumpLine[] {
  const lines: DumpLine[] = [];
  text.split('\n').forEach((raw, index) => {
    if (raw.trim() === '') return;
    const where = `${source}:${index + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (error) {
      throw new AnswerCurveError('DUMP_INVALID', `${where}: not JSON (${(error as Error).message})`);
    }
    const parsed = dumpLineSchema.safeParse(json);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'line'}: ${issue.message}`);
      throw new AnswerCurveError('DUMP_INVALID', `${where}: ${problems.join('; ')}`);
    }
    lines.push(parsed.data);
  });
  return lines;
}

/** One asked question as the curve sees it. */
export interface ScoredQuestion {
  /** The entry that answers it; null: unanswerable. */
  readonly expected: string | null;
  readonly certainty: number;
  /** The best hit's entry; null: retrieval found nothing, so no threshold answers it. */
  readonly top: string | null;
}

export interface CurveQuestions {
  readonly paraphrases: readonly ScoredQuestion[];
  readonly unanswerable: readonly ScoredQuestion[];
}

/** The paraphrases and unanswerable questions asked at one stage; DUMP_INVALID when either set is missing there. */
export function questionsAt(lines: readonly DumpLine[], stage: string, source: string): CurveQuestions {
  const pick = (set: string): ScoredQuestion[] =>
    lines.filter((line) => line.stage === stage && line.set === set).map((line) => ({ expected: line.expected, certainty: line.certainty, top: line.hits[0]?.id ?? null }));
  const paraphrases = pick('paraphrases');
  const unanswerable = pick('unanswerable');
  for (const [set, questions] of [
    ['paraphrases', paraphrases],
    ['unanswerable', unanswerable],
  ] as const) {
    if (questions.length === 0) {
      const present = [...new Set(lines.map((line) => `${line.stage}/${line.set}`))];
      throw new AnswerCurveError('DUMP_INVALID', `${source}: no ${set} questions at stage ${stage}; it holds ${present.join(', ') || 'nothing'}`);
    }
  }
  if (paraphrases.some((question) => question.expected === null)) throw new AnswerCurveError('DUMP_INVALID', `${source}: a paraphrase at stage ${stage} has no expected entry`);
  if (unanswerable.some((question) => question.expected !== null)) throw new AnswerCurveError('DUMP_INVALID', `${source}: an unanswerable question at stage ${stage} names an expected entry`);
  return { paraphrases, unanswerable };
}

/** Shares of the questions asked, at one threshold. */
export interface CurvePoint {
  readonly t: number;
  /** Paraphrases answered. */
  readonly coverage: number;
  /** Paraphrases answered with their own entry. */
  readonly correct: number;
  /** Paraphrases answered with another entry. */
  readonly wrong: number;
  /** Unanswerable questions answered (with anything). */
  readonly unanswerableAnswered: number;
}

function answers(question: ScoredQuestion, t: number): boolean {
  return question.top !== null && question.certainty >= t;
}

export function curvePoint(questions: CurveQuestions, t: number): CurvePoint {
  const { paraphrases, unanswerable } = questions;
  const answered = paraphrases.filter((question) => answers(question, t));
  const correct = answered.filter((question) => question.top === question.expected).length;
  return {
    t,
    coverage: answered.length / paraphrases.length,
    correct: correct / paraphrases.length,
    wrong: (answered.length - correct) / paraphrases.length,
    unanswerableAnswered: unanswerable.filter((question) => answers(question, t)).length / unanswerable.length,
  };
}

/** 0, 0.01, ..., 1; each i / 100, so a grid value equals the same number written in a config file. */
export const THRESHOLD_GRID: readonly number[] = Array.from({ length: 101 }, (_, i) => i / 100);

/**
 * The curve at every certainty seen (where it changes) and every grid threshold, from the
 * highest threshold to the lowest: coverage, correct and wrong only grow along it.
 */
export function answerCurve(questions: CurveQuestions): CurvePoint[] {
  const seen = [...questions.paraphrases, ...questions.unanswerable].map((question) => question.certainty);
  const thresholds = [...new Set([...THRESHOLD_GRID, ...seen])].sort((a, b) => b - a);
  return thresholds.map((t) => curvePoint(questions, t));
}

/**
 * The lowest threshold among points whose paraphrases answered wrong and unanswerable questions
 * answered are both at most maxWrong; null when no point keeps both down.
 */
export function lowestSafeThreshold(points: readonly CurvePoint[], maxWrong: number): CurvePoint | null {
  let lowest: CurvePoint | null = null;
  for (const point of points) {
    if (point.wrong <= maxWrong && point.unanswerableAnswered <= maxWrong && (lowest === null || point.t < lowest.t)) lowest = point;
  }
  return lowest;
}
