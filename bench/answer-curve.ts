/**
 * bench:answer-curve — what the confidence threshold buys, from bench:answers dumps: for each
 * threshold on a 0.01 grid a JSON line with the paraphrases answered, answered right and answered
 * wrong and the unanswerable questions answered (as shares of those asked; see
 * answer-curve-data.ts), then a summary line per dump: the lowest threshold that keeps both
 * kinds of wrong answer at or under 5%, and the figures at the configured engine.confidentMatch.
 * The picture (one curve per dump, the configured threshold marked) goes to --out.
 *
 *   npm run bench:answers -- --no-finetune --dump /tmp/pedal.jsonl
 *   npm run bench:answer-curve -- --dump /tmp/pedal.jsonl [--dump OTHER.jsonl ...]
 *       [--stage before-finetune] [--out docs/answer-quality.png]
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, extname } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/core/config.js';
import { renderAnswerCurvePng, type AnswerCurveSeries } from './answer-curve-chart.js';
import { AnswerCurveError, answerCurve, curvePoint, lowestSafeThreshold, parseDump, questionsAt, THRESHOLD_GRID, type CurvePoint } from './answer-curve-data.js';

const MAX_WRONG = 0.05;

const { values: flags } = parseArgs({
  options: {
    dump: { type: 'string', multiple: true },
    stage: { type: 'string', default: 'before-finetune' },
    out: { type: 'string', default: 'docs/answer-quality.png' },
  },
});

const dumps = flags.dump ?? [];
if (dumps.length === 0) throw new AnswerCurveError('OPTIONS_INVALID', 'give at least one --dump FILE, as written by npm run bench:answers -- --dump FILE');
const { confidentMatch } = loadConfig().engine;

const series: AnswerCurveSeries[] = [];
for (const file of dumps) {
  const questions = questionsAt(parseDump(await readFile(file, 'utf8'), file), flags.stage, file);
  for (const t of THRESHOLD_GRID) report({ data: file, ...figures(curvePoint(questions, t)) });
  const points = answerCurve(questions);
  const safe = lowestSafeThreshold(points, MAX_WRONG);
  const marked = curvePoint(questions, confidentMatch);
  report({
    data: file,
    stage: flags.stage,
    paraphrases: questions.paraphrases.length,
    unanswerable: questions.unanswerable.length,
    summary: `lowest threshold with at most ${MAX_WRONG * 100}% of paraphrases answered wrong and ${MAX_WRONG * 100}% of unanswerable questions answered`,
    lowestSafe: safe && figures(safe),
    atConfidentMatch: figures(marked),
  });
  series.push({ name: basename(file, extname(file)), points, marked });
}

const png = renderAnswerCurvePng(series, {
  markedThreshold: confidentMatch,
  maxWrong: MAX_WRONG,
  title: `Answers by threshold, ${flags.stage}`,
  width: 1000,
  height: 600,
});
await mkdir(dirname(flags.out), { recursive: true });
await writeFile(flags.out, png);
report({ event: 'picture', out: flags.out, bytes: png.length });

function figures(point: CurvePoint): CurvePoint {
  return {
    t: point.t,
    coverage: round(point.coverage),
    correct: round(point.correct),
    wrong: round(point.wrong),
    unanswerableAnswered: round(point.unanswerableAnswered),
  };
}

function round(value: number): number {
  return Math.round(value * 10000) / 10000;
}

function report(line: object): void {
  console.log(JSON.stringify({ bench: 'answer-curve', ...line }));
}
