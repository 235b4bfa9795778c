import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { renderAnswerCurvePng } from '../../bench/answer-curve-chart.js';
import {
  AnswerCurveError,
  answerCurve,
  type CurvePoint,
  curvePoint,
  lowestSafeThreshold,
  parseDump,
  questionsAt,
  THRESHOLD_GRID,
} from '../../bench/answer-curve-data.js';
import { CHART_COLOURS, SERIES_COLOURS } from '../../src/model/training/loss-curve/chart-axes.js';
import { SeededRandom } from '../../src/model/random.js';
import { decodePng, lineYAt, pixelsOf } from '../helpers/png-decode.js';

const run = promisify(execFile);

/** A line as bench:answers writes it; hit ids best first. */
function line(stage: string, set: string, expected: string | null, certainty: number, hitIds: string[]): string {
  return JSON.stringify({
    stage,
    set,
    text: `question ${expected ?? 'none'} ${certainty}`,
    expected,
    path: 'fallback',
    verdict: 'abstained',
    certainty,
    hits: hitIds.map((id, rank) => ({ id, confidence: 1 - rank / 10, score: 10 - rank })),
  });
}

/**
 * Six paraphrases: a, b and d are ranked first (right), c and e under another entry (wrong),
 * f finds nothing. Four unanswerable questions, one finding nothing. 0.705 and 0.755 lie off
 * the 0.01 grid; d and e tie at 0.5. Lines of other stages and sets must be left out.
 */
const DUMP = [
  line('before-finetune', 'originals', 'a', 0.95, ['a']),
  line('before-finetune', 'paraphrases', 'a', 0.9, ['a', 'b']),
  line('before-finetune', 'paraphrases', 'b', 0.8, ['b', 'a']),
  line('before-finetune', 'paraphrases', 'c', 0.705, ['x', 'c']),
  line('before-finetune', 'paraphrases', 'd', 0.5, ['d']),
  line('before-finetune', 'paraphrases', 'e', 0.5, ['y', 'e']),
  line('before-finetune', 'paraphrases', 'f', 0, []),
  line('before-finetune', 'unanswerable', null, 0.755, ['z']),
  line('before-finetune', 'unanswerable', null, 0.4, ['a']),
  line('before-finetune', 'unanswerable', null, 0.1, ['b']),
  line('before-finetune', 'unanswerable', null, 0, []),
  line('after-finetune', 'paraphrases', 'a', 0.99, ['x']),
  line('after-finetune', 'unanswerable', null, 0.99, ['x']),
  '',
].join('\n');

const questions = questionsAt(parseDump(DUMP, 'hand.jsonl'), 'before-finetune', 'hand.jsonl');

/** Counted by hand from DUMP: [t, paraphrases answered, right, wrong, unanswerable answered] out of 6 and 4. */
const BY_HAND: [number, number, number, number, number][] = [
  [1, 0, 0, 0, 0],
  [0.9, 1, 1, 0, 0],
  [0.8, 2, 2, 0, 0],
  [0.76, 2, 2, 0, 0],
  [0.755, 2, 2, 0, 1],
  [0.71, 2, 2, 0, 1],
  [0.705, 3, 2, 1, 1],
  [0.51, 3, 2, 1, 1],
  [0.5, 5, 3, 2, 1],
  [0.4, 5, 3, 2, 2],
  [0.1, 5, 3, 2, 3],
  // f and the last unanswerable question found nothing, so even 0 does not answer them.
  [0, 5, 3, 2, 3],
];

function byHand([t, answered, right, wrong, unanswerable]: (typeof BY_HAND)[number]): CurvePoint {
  return { t, coverage: answered / 6, correct: right / 6, wrong: wrong / 6, unanswerableAnswered: unanswerable / 4 };
}

function rejects(action: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(action, (error: unknown) => error instanceof AnswerCurveError && error.code === code && pattern.test(error.message));
}

describe('answer curve figures', () => {
  it('counts answered, right, wrong and unanswerable answered at each threshold as counted by hand', () => {
    assert.equal(questions.paraphrases.length, 6);
    assert.equal(questions.unanswerable.length, 4);
    for (const row of BY_HAND) assert.deepEqual(curvePoint(questions, row[0]), byHand(row), `t = ${row[0]}`);
  });

  it('runs the curve over the 0.01 grid and every certainty seen, from the highest threshold down', () => {
    const points = answerCurve(questions);
    // 0.705 and 0.755 are the only certainties off the grid.
    assert.equal(points.length, THRESHOLD_GRID.length + 2);
    assert.deepEqual(points.map((point) => point.t), [...THRESHOLD_GRID, 0.705, 0.755].sort((a, b) => b - a));
    for (const row of BY_HAND) assert.deepEqual(points.find((point) => point.t === row[0]), byHand(row));
  });

  it('finds the lowest threshold that keeps both kinds of wrong answer under the limit', () => {
    const points = answerCurve(questions);
    // No wrong answer at all: above 0.755, where the first unanswerable question is answered.
    assert.deepEqual(lowestSafeThreshold(points, 0.05), byHand([0.76, 2, 2, 0, 0]));
    // One paraphrase in six and one unanswerable in four: above 0.5, where e is answered wrong.
    assert.deepEqual(lowestSafeThreshold(points, 0.25), byHand([0.51, 3, 2, 1, 1]));
    // Everything answered: 2/6 wrong, 3/4 unanswerable answered, the lowest threshold of all.
    assert.equal(lowestSafeThreshold(points, 0.75)?.t, 0);
    assert.equal(lowestSafeThreshold([{ t: 1, coverage: 0.1, correct: 0, wrong: 0.1, unanswerableAnswered: 0 }], 0.05), null);
  });

  it('only grows along the curve on a random dump', () => {
    const random = new SeededRandom(11);
    const ids = ['a', 'b', 'c', 'd'];
    const pick = () => ids[Math.floor(random.next() * ids.length)];
    const lines = Array.from({ length: 300 }, (_, i) => {
      const certainty = Math.round(random.next() * 1000) / 1000;
      return i % 3 === 0 ? line('s', 'unanswerable', null, certainty, [pick()]) : line('s', 'paraphrases', pick(), certainty, [pick(), pick()]);
    });
    const points = answerCurve(questionsAt(parseDump(lines.join('\n'), 'random'), 's', 'random'));
    for (let i = 1; i < points.length; i++) {
      for (const key of ['coverage', 'correct', 'wrong', 'unanswerableAnswered'] as const) assert.ok(points[i][key] >= points[i - 1][key], `${key} at t = ${points[i].t}`);
      assert.ok(Math.abs(points[i].correct + points[i].wrong - points[i].coverage) < 1e-12);
    }
    assert.equal(points.at(-1)?.coverage, 1);
  });

  it('rejects a bad dump line with its file, line and field, and a stage or set the dump lacks', () => {
    rejects(() => parseDump(`${DUMP.split('\n')[0]}\n{"stage":`, 'd.jsonl'), 'DUMP_INVALID', /^d\.jsonl:2: not JSON/);
    rejects(() => parseDump(line('s', 'paraphrases', 'a', 1.5, ['a']), 'd.jsonl'), 'DUMP_INVALID', /^d\.jsonl:1: certainty: /);
    rejects(() => parseDump(JSON.stringify({ stage: 's', set: 'paraphrases', expected: 'a', certainty: 0.5 }), 'd.jsonl'), 'DUMP_INVALID', /^d\.jsonl:1: hits: /);
    const lines = parseDump(DUMP, 'hand.jsonl');
    rejects(() => questionsAt(lines, 'after-loop', 'hand.jsonl'), 'DUMP_INVALID', /hand\.jsonl: no paraphrases questions at stage after-loop; it holds before-finetune\/originals, before-finetune\/paraphrases/);
    rejects(() => questionsAt(parseDump(line('s', 'paraphrases', 'a', 0.5, ['a']), 'p'), 's', 'p'), 'DUMP_INVALID', /no unanswerable questions at stage s/);
    const unlabelled = [line('s', 'paraphrases', null, 0.5, ['a']), line('s', 'unanswerable', null, 0.5, ['a'])].join('\n');
    rejects(() => questionsAt(parseDump(unlabelled, 'p'), 's', 'p'), 'DUMP_INVALID', /a paraphrase at stage s has no expected entry/);
  });
});

describe('answer curve picture', () => {
  const points = answerCurve(questions);
  const marked = curvePoint(questions, 0.75);
  const options = { markedThreshold: 0.75, maxWrong: 0.05, width: 640, height: 420, title: 'answers' };

  it('draws the data set as a line that climbs from the origin, the dashed limit and the legend', () => {
    const image = decodePng(renderAnswerCurvePng([{ name: 'hand', points, marked }], options));
    assert.equal(image.width, 640);
    assert.equal(image.height, 420);
    const line = pixelsOf(image, SERIES_COLOURS[0]);
    assert.ok(line.length > 200, `${line.length} pixels of the line`);
    assert.ok(pixelsOf(image, CHART_COLOURS.text).length > 500, 'title, labels and legend are drawn');
    // At 0% wrong it climbs from the bottom to 2/6 right (y grows downwards), then runs right at that height.
    const origin = Math.min(...line.map((pixel) => pixel.x));
    const lowest = Math.max(...line.filter((pixel) => pixel.x < origin + 15).map((pixel) => pixel.y));
    assert.ok(lowest > lineYAt(line, origin + 40) + 100, `from y = ${lowest} up to ${lineYAt(line, origin + 40)}`);

    // The limit: a column of warning red broken into dashes, left of the middle where 5% lies.
    const perColumn = new Map<number, number[]>();
    for (const pixel of pixelsOf(image, CHART_COLOURS.warning)) perColumn.set(pixel.x, [...(perColumn.get(pixel.x) ?? []), pixel.y]);
    const [x, ys] = [...perColumn].sort((a, b) => b[1].length - a[1].length)[0];
    const span = Math.max(...ys) - Math.min(...ys) + 1;
    assert.ok(span > 200 && ys.length > span * 0.3 && ys.length < span * 0.8, `${ys.length} of ${span} pixels: dashed`);
    assert.ok(x > origin && x < image.width / 4, `limit at x = ${x}`);
  });

  it('draws each data set in its own colour', () => {
    const shifted = { ...questions, paraphrases: questions.paraphrases.map((question) => ({ ...question, certainty: question.certainty / 2 })) };
    const series = [
      { name: 'hand', points, marked },
      { name: 'shifted', points: answerCurve(shifted), marked: curvePoint(shifted, 0.75) },
    ];
    const image = decodePng(renderAnswerCurvePng(series, options));
    for (const colour of SERIES_COLOURS.slice(0, 2)) assert.ok(pixelsOf(image, colour).length > 100, `${colour} is drawn`);
    assert.equal(pixelsOf(image, SERIES_COLOURS[2]).length, 0);
  });

  it('rejects no data set, more than it has colours for, and a size out of range', () => {
    rejects(() => renderAnswerCurvePng([], options), 'OPTIONS_INVALID', /draws 1 to 4 data sets, got 0/);
    const five = Array.from({ length: 5 }, (_, i) => ({ name: `set${i}`, points, marked }));
    rejects(() => renderAnswerCurvePng(five, options), 'OPTIONS_INVALID', /got 5/);
    rejects(() => renderAnswerCurvePng([{ name: 'empty', points: [], marked }], options), 'OPTIONS_INVALID', /empty has no points/);
    assert.throws(() => renderAnswerCurvePng([{ name: 'hand', points, marked }], { ...options, width: 100 }), /answer curve: width must be an integer in \[240, 4096\]/);
  });
});

describe('npm run bench:answer-curve', () => {
  it('prints a line per grid threshold and the summary, and writes the picture', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tunebot-answer-curve-'));
    try {
      await writeFile(join(dir, 'hand.jsonl'), DUMP);
      const out = join(dir, 'pictures', 'curve.png');
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/answer-curve.ts', '--dump', join(dir, 'hand.jsonl'), '--out', out], {
        env: { ...process.env, TUNEBOT_ENGINE_CONFIDENT_MATCH: '0.75' },
      });
      const lines = stdout.trim().split('\n').map((text) => JSON.parse(text));
      const grid = lines.filter((parsed) => 't' in parsed);
      assert.equal(grid.length, THRESHOLD_GRID.length);
      assert.deepEqual(grid.find((parsed) => parsed.t === 0.5), { bench: 'answer-curve', data: join(dir, 'hand.jsonl'), t: 0.5, coverage: 0.8333, correct: 0.5, wrong: 0.3333, unanswerableAnswered: 0.25 });
      const summary = lines.find((parsed) => 'lowestSafe' in parsed);
      assert.deepEqual(summary.lowestSafe, { t: 0.76, coverage: 0.3333, correct: 0.3333, wrong: 0, unanswerableAnswered: 0 });
      assert.deepEqual(summary.atConfidentMatch, { t: 0.75, coverage: 0.3333, correct: 0.3333, wrong: 0, unanswerableAnswered: 0.25 });
      assert.equal(decodePng(await readFile(out)).width, 1000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails with a clear message without --dump', async () => {
    await assert.rejects(run(process.execPath, ['--import', 'tsx', 'bench/answer-curve.ts']), /OPTIONS_INVALID|give at least one --dump FILE/);
  });
});
