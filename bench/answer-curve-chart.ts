import {
  type Axis,
  CHART_COLOURS,
  chartPadding,
  chartScale,
  checkChartSize,
  DEFAULT_CHART_HEIGHT,
  DEFAULT_CHART_WIDTH,
  drawAxes,
  drawLegend,
  drawOutlinedMarker,
  drawTitle,
  type LegendEntry,
  linearTicks,
  type Plot,
  SERIES_COLOURS,
} from '../src/model/training/loss-curve/chart-axes.js';
import { encodePngRgb } from '../src/model/training/loss-curve/png.js';
import { RgbCanvas, type Rgb } from '../src/model/training/loss-curve/raster.js';
import { AnswerCurveError, type CurvePoint } from './answer-curve-data.js';

export interface AnswerCurveSeries {
  /** The legend's name for this data set. */
  readonly name: string;
  /** From the highest threshold to the lowest (answerCurve's order). */
  readonly points: readonly CurvePoint[];
  /** The point at the configured threshold, marked on both of the series' lines. */
  readonly marked: CurvePoint;
}

export interface AnswerCurveImageOptions {
  /** The marked threshold, for the legend. */
  readonly markedThreshold: number;
  /** Where the dashed line stands, as a share (0.05: 5% wrong). */
  readonly maxWrong: number;
  readonly title?: string;
  readonly width?: number;
  readonly height?: number;
}

function percentAxis(label: string, highest: number, tickCount: number): Axis {
  const max = Math.min(100, highest * 1.05);
  return { label, min: 0, max, ticks: linearTicks(0, max, tickCount, false), minor: [], log: false };
}

/** The colour halfway to white: a data set's unanswerable line beside its paraphrase line. */
function tint([r, g, b]: Rgb): Rgb {
  return [Math.round((r + 255) / 2), Math.round((g + 255) / 2), Math.round((b + 255) / 2)];
}

function drawPolyline(canvas: RgbCanvas, plot: Plot, points: readonly { x: number; y: number }[], colour: Rgb, thickness: number): void {
  for (let i = 1; i < points.length; i++) {
    canvas.line(plot.toX(points[i - 1].x), plot.toY(points[i - 1].y), plot.toX(points[i].x), plot.toY(points[i].y), colour, thickness);
  }
}

/**
 * Answer quality against the confidence threshold, as an 8-bit RGB PNG: for each data set,
 * paraphrases answered right (y) against paraphrases answered wrong (x), one point per
 * threshold, and in a lighter colour the same y against the unanswerable questions answered;
 * the configured threshold marked on both, a dashed line at maxWrong, a legend.
 */
export function renderAnswerCurvePng(series: readonly AnswerCurveSeries[], options: AnswerCurveImageOptions): Buffer {
  const width = options.width ?? DEFAULT_CHART_WIDTH;
  const height = options.height ?? DEFAULT_CHART_HEIGHT;
  checkChartSize('answer curve', width, height);
  if (series.length === 0 || series.length > SERIES_COLOURS.length) {
    throw new AnswerCurveError('OPTIONS_INVALID', `answer curve: draws 1 to ${SERIES_COLOURS.length} data sets, got ${series.length}`);
  }
  const empty = series.find((one) => one.points.length === 0);
  if (empty) throw new AnswerCurveError('OPTIONS_INVALID', `answer curve: ${empty.name} has no points`);

  const canvas = new RgbCanvas(width, height, CHART_COLOURS.background);
  const scale = chartScale(width, height);
  const pad = chartPadding(scale);
  const top = options.title ? drawTitle(canvas, options.title, scale) : pad;
  const all = series.flatMap((one) => one.points);
  const wrongest = Math.max(options.maxWrong * 2, ...all.map((point) => Math.max(point.wrong, point.unanswerableAnswered))) * 100;
  const plot = drawAxes(canvas, {
    top,
    scale,
    x: (tickCount) => percentAxis('answered wrong (% of asked)', wrongest, tickCount),
    y: (tickCount) => percentAxis('paraphrases answered right (% of asked)', Math.max(10, ...all.map((point) => point.correct * 100)), tickCount),
  });

  const dash: [number, number] = [5 * scale, 4 * scale];
  const limitX = plot.toX(options.maxWrong * 100);
  canvas.line(limitX, plot.top, limitX, plot.bottom, CHART_COLOURS.warning, scale, dash);
  canvas.text(limitX + pad, plot.top + pad, `${Number((options.maxWrong * 100).toFixed(1))}% wrong`, CHART_COLOURS.warning, scale);

  const markerSize = 5 + 2 * scale;
  const unanswerableThickness = scale;
  const colours = series.map((_, index) => ({ paraphrases: SERIES_COLOURS[index], unanswerable: tint(SERIES_COLOURS[index]) }));
  series.forEach((one, index) => {
    // The unanswerable line first, so that where the two meet the paraphrase line stays on top.
    drawPolyline(canvas, plot, one.points.map((point) => ({ x: point.unanswerableAnswered * 100, y: point.correct * 100 })), colours[index].unanswerable, unanswerableThickness);
    drawPolyline(canvas, plot, one.points.map((point) => ({ x: point.wrong * 100, y: point.correct * 100 })), colours[index].paraphrases, scale);
  });
  // Markers after every line, so that no data set's line hides another's marker.
  const legend: LegendEntry[] = [];
  series.forEach((one, index) => {
    const { paraphrases, unanswerable } = colours[index];
    const markedY = plot.toY(one.marked.correct * 100);
    drawOutlinedMarker(canvas, plot.toX(one.marked.unanswerableAnswered * 100), markedY, unanswerable, markerSize, CHART_COLOURS.text);
    drawOutlinedMarker(canvas, plot.toX(one.marked.wrong * 100), markedY, paraphrases, markerSize, CHART_COLOURS.text);
    legend.push({ label: `${one.name}: paraphrases answered wrong`, colour: paraphrases, line: { thickness: scale } });
    legend.push({ label: `${one.name}: unanswerable answered`, colour: unanswerable, line: { thickness: unanswerableThickness } });
  });
  legend.push({ label: `threshold = confidentMatch ${options.markedThreshold}`, colour: CHART_COLOURS.background, marker: { size: markerSize, outline: CHART_COLOURS.text } });
  // Right answers rise fastest at first, so the curves leave the bottom-right corner free.
  drawLegend(canvas, plot, legend, scale, 'bottom-right');

  return encodePngRgb(canvas.pixels, width, height);
}
