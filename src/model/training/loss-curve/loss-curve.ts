import { ModelError } from '../../errors.js';
import {
  type Axis,
  CHART_COLOURS,
  chartPadding,
  chartScale,
  checkChartSize,
  DEFAULT_CHART_HEIGHT,
  DEFAULT_CHART_WIDTH,
  drawAxes,
  drawFrame,
  drawLegend,
  drawMarker,
  drawTitle,
  fitText,
  type LegendEntry,
  linearTicks,
  SERIES_COLOURS,
  type Tick,
} from './chart-axes.js';
import { encodePngRgb } from './png.js';
import { GLYPH_HEIGHT, RgbCanvas, textWidth, type Rgb } from './raster.js';

export interface LossPoint {
  readonly step: number;
  readonly loss: number;
}

export interface LossCurve {
  readonly train: readonly LossPoint[];
  readonly validation?: readonly LossPoint[];
}

export interface LossCurveImageOptions {
  readonly width?: number;
  readonly height?: number;
  readonly title?: string;
}

/** More than this many decades between the smallest and largest loss switches the y axis to log scale. */
const LOG_SCALE_DECADES = 2;

export const COLOURS = {
  ...CHART_COLOURS,
  train: SERIES_COLOURS[0],
  validation: SERIES_COLOURS[1],
} as const satisfies Record<string, Rgb>;

function invalid(message: string): ModelError {
  return new ModelError('OPTIONS_INVALID', `loss curve: ${message}`);
}

function formatPowerOfTen(exponent: number): string {
  if (exponent >= 0 && exponent <= 4) return String(10 ** exponent);
  if (exponent < 0 && exponent >= -3) return (10 ** exponent).toFixed(-exponent);
  return `1e${exponent}`;
}

function stepAxis(steps: readonly number[], tickCount: number): Axis {
  let min = Math.min(...steps);
  let max = Math.max(...steps);
  if (min === max) {
    min = Math.max(0, min - 1);
    max += 1;
  }
  const integerSteps = steps.every(Number.isInteger);
  return { label: 'step', min, max, ticks: linearTicks(min, max, tickCount, integerSteps), minor: [], log: false };
}

function lossAxis(losses: readonly number[], tickCount: number): Axis {
  const low = Math.min(...losses);
  const high = Math.max(...losses);
  if (low > 0 && Math.log10(high / low) > LOG_SCALE_DECADES) {
    const min = Math.log10(low) - 0.05;
    const max = Math.log10(high) + 0.05;
    const ticks: Tick[] = [];
    const minor: number[] = [];
    const decades = max - min;
    // With many decades, label every second or third one so the labels do not touch.
    const every = Math.max(1, Math.ceil(decades / Math.max(tickCount, 1)));
    for (let exponent = Math.floor(min); exponent <= Math.ceil(max); exponent++) {
      if (exponent >= min && exponent <= max && exponent % every === 0) ticks.push({ value: exponent, label: formatPowerOfTen(exponent) });
      if (decades > 8) continue;
      for (let multiple = 2; multiple <= 9; multiple++) {
        const value = exponent + Math.log10(multiple);
        if (value >= min && value <= max) minor.push(value);
      }
    }
    return { label: 'loss (log scale)', min, max, ticks, minor, log: true };
  }
  const span = high - low;
  const padding = span > 0 ? span * 0.06 : Math.max(Math.abs(low) * 0.1, 0.5);
  const min = low - padding;
  const max = high + padding;
  return { label: 'loss', min, max, ticks: linearTicks(min, max, tickCount, false), minor: [], log: false };
}

interface Series {
  readonly points: LossPoint[];
  readonly nonFinite: number;
}

function checkedSeries(name: string, points: readonly LossPoint[] | undefined): Series {
  if (points === undefined) return { points: [], nonFinite: 0 };
  if (!Array.isArray(points)) throw invalid(`${name} must be an array of {step, loss}`);
  points.forEach((point, index) => {
    if (typeof point !== 'object' || point === null || !Number.isFinite(point.step)) {
      throw invalid(`${name}[${index}].step must be a finite number, got ${JSON.stringify((point as LossPoint | null)?.step)}`);
    }
    if (typeof point.loss !== 'number') throw invalid(`${name}[${index}].loss must be a number, got ${typeof point.loss}`);
  });
  const sorted = [...points].sort((a, b) => a.step - b.step);
  return { points: sorted, nonFinite: sorted.filter((point) => !Number.isFinite(point.loss)).length };
}

/**
 * The loss curve as an 8-bit RGB PNG: training loss as a line, validation loss as marked
 * points joined by a thinner line, a legend, axes with ticks. The y axis turns logarithmic
 * when the losses span more than two decades, and its label says so.
 * Non-finite losses (a diverged run's NaN) are left out, the line breaks there, and a red
 * note counts them. With no finite loss at all the picture is a frame saying "no data";
 * a non-finite step or a non-numeric loss is an OPTIONS_INVALID error.
 */
export function renderLossCurvePng(curve: LossCurve, options: LossCurveImageOptions = {}): Buffer {
  const width = options.width ?? DEFAULT_CHART_WIDTH;
  const height = options.height ?? DEFAULT_CHART_HEIGHT;
  checkChartSize('loss curve', width, height);
  if (typeof curve !== 'object' || curve === null) throw invalid('curve must be an object {train, validation?}');
  const train = checkedSeries('train', curve.train);
  const validation = checkedSeries('validation', curve.validation);

  const canvas = new RgbCanvas(width, height, COLOURS.background);
  const scale = chartScale(width, height);
  const lineHeight = GLYPH_HEIGHT * scale;
  const pad = chartPadding(scale);

  // Top band: title, then the note on non-finite losses; drawAxes puts the y-axis label below.
  let top = options.title ? drawTitle(canvas, options.title, scale) : pad;
  const nonFinite = train.nonFinite + validation.nonFinite;
  if (nonFinite > 0) {
    const note = fitText(`${nonFinite} loss value${nonFinite === 1 ? ' is' : 's are'} NaN or infinite, not drawn`, scale, width - 2 * pad);
    canvas.text(pad, top, note, COLOURS.warning, scale);
    top += lineHeight + pad;
  }

  const finite = [...train.points, ...validation.points].filter((point) => Number.isFinite(point.loss));
  if (finite.length === 0) {
    const frame = { left: pad, top, right: width - pad, bottom: height - pad };
    drawFrame(canvas, frame);
    const message = 'no data';
    const messageScale = scale + 1;
    canvas.text(
      (frame.left + frame.right - textWidth(message, messageScale)) / 2,
      (frame.top + frame.bottom - GLYPH_HEIGHT * messageScale) / 2,
      message,
      COLOURS.text,
      messageScale,
    );
    return encodePngRgb(canvas.pixels, width, height);
  }

  const plot = drawAxes(canvas, {
    top,
    scale,
    x: (tickCount) => stepAxis(finite.map((point) => point.step), tickCount),
    y: (tickCount) => lossAxis(finite.map((point) => point.loss), tickCount),
  });
  const toY = (loss: number): number => plot.toY(plot.yAxis.log ? Math.log10(loss) : loss);

  drawSeries(canvas, train.points, plot.toX, toY, COLOURS.train, scale, false);
  const validationThickness = Math.max(1, scale - 1);
  drawSeries(canvas, validation.points, plot.toX, toY, COLOURS.validation, validationThickness, true);

  const legend: LegendEntry[] = [];
  if (train.points.length > 0) legend.push({ label: 'train', colour: COLOURS.train, line: { thickness: scale } });
  if (validation.points.length > 0) {
    legend.push({ label: 'validation', colour: COLOURS.validation, line: { thickness: validationThickness }, marker: { size: 3 + 2 * validationThickness } });
  }
  // A falling loss curve leaves the top-right corner free.
  drawLegend(canvas, plot, legend, scale, 'top-right');

  return encodePngRgb(canvas.pixels, width, height);
}

/** Joins consecutive finite points; a non-finite loss breaks the line. */
function drawSeries(
  canvas: RgbCanvas,
  points: readonly LossPoint[],
  toX: (step: number) => number,
  toY: (loss: number) => number,
  colour: Rgb,
  thickness: number,
  markers: boolean,
): void {
  let previous: { x: number; y: number } | null = null;
  let segmentLength = 0;
  const markerSize = 3 + 2 * thickness;
  points.forEach((point, index) => {
    if (!Number.isFinite(point.loss)) {
      // A lone point between two breaks would draw nothing as a line.
      if (previous && segmentLength === 1 && !markers) drawMarker(canvas, previous.x, previous.y, colour, markerSize);
      previous = null;
      segmentLength = 0;
      return;
    }
    const current = { x: toX(point.step), y: toY(point.loss) };
    if (previous) canvas.line(previous.x, previous.y, current.x, current.y, colour, thickness);
    previous = current;
    segmentLength++;
    if (index === points.length - 1 && segmentLength === 1 && !markers) drawMarker(canvas, current.x, current.y, colour, markerSize);
  });
  if (markers) {
    for (const point of points) {
      if (Number.isFinite(point.loss)) drawMarker(canvas, toX(point.step), toY(point.loss), colour, markerSize);
    }
  }
}
