import { ModelError } from '../errors.js';
import { encodePngRgb } from './png.js';
import { CAP_HEIGHT, GLYPH_HEIGHT, RgbCanvas, textWidth, type Rgb } from './raster.js';

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

const DEFAULT_WIDTH = 800;
const DEFAULT_HEIGHT = 500;
const MIN_WIDTH = 240;
const MIN_HEIGHT = 160;
const MAX_SIDE = 4096;
/** More than this many decades between the smallest and largest loss switches the y axis to log scale. */
const LOG_SCALE_DECADES = 2;

export const COLOURS = {
  background: [255, 255, 255],
  frame: [90, 90, 90],
  grid: [228, 228, 228],
  minorGrid: [243, 243, 243],
  text: [40, 40, 40],
  warning: [200, 30, 30],
  train: [31, 119, 180],
  validation: [230, 110, 0],
} as const satisfies Record<string, Rgb>;

interface Tick {
  readonly value: number;
  readonly label: string;
}

interface Axis {
  readonly min: number;
  readonly max: number;
  readonly ticks: readonly Tick[];
  /** Grid lines without a label (log scale's 2..9 multiples). */
  readonly minor: readonly number[];
  readonly log: boolean;
}

function invalid(message: string): ModelError {
  return new ModelError('OPTIONS_INVALID', `loss curve: ${message}`);
}

/** 1, 2 or 5 times a power of ten, near range / count. */
function niceStep(range: number, count: number): number {
  const raw = range / Math.max(count, 1);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normalized = raw / magnitude;
  const nice = normalized < 1.5 ? 1 : normalized < 3 ? 2 : normalized < 7 ? 5 : 10;
  return nice * magnitude;
}

function formatLinear(value: number, step: number): string {
  if (value === 0) return '0';
  const decimals = Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
  if (Math.abs(value) >= 1e6 || decimals > 4) {
    const digits = Math.floor(Math.log10(Math.abs(value))) - Math.floor(Math.log10(step));
    return value.toExponential(Math.min(Math.max(digits, 0), 3)).replace('+', '');
  }
  return value.toFixed(decimals);
}

function formatPowerOfTen(exponent: number): string {
  if (exponent >= 0 && exponent <= 4) return String(10 ** exponent);
  if (exponent < 0 && exponent >= -3) return (10 ** exponent).toFixed(-exponent);
  return `1e${exponent}`;
}

function linearTicks(min: number, max: number, count: number, integerSteps: boolean): Tick[] {
  let step = niceStep(max - min, count);
  if (integerSteps) step = Math.max(1, step);
  const ticks: Tick[] = [];
  for (let i = Math.ceil(min / step - 1e-9); i * step <= max + step * 1e-9; i++) {
    const value = Math.abs(i * step) < step * 1e-9 ? 0 : i * step;
    ticks.push({ value, label: formatLinear(value, step) });
  }
  return ticks;
}

function stepAxis(steps: readonly number[], tickCount: number): Axis {
  let min = Math.min(...steps);
  let max = Math.max(...steps);
  if (min === max) {
    min = Math.max(0, min - 1);
    max += 1;
  }
  const integerSteps = steps.every(Number.isInteger);
  return { min, max, ticks: linearTicks(min, max, tickCount, integerSteps), minor: [], log: false };
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
    return { min, max, ticks, minor, log: true };
  }
  const span = high - low;
  const padding = span > 0 ? span * 0.06 : Math.max(Math.abs(low) * 0.1, 0.5);
  const min = low - padding;
  const max = high + padding;
  return { min, max, ticks: linearTicks(min, max, tickCount, false), minor: [], log: false };
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

function checkSize(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min || value > MAX_SIDE) throw invalid(`${name} must be an integer in [${min}, ${MAX_SIDE}], got ${value}`);
}

/** Cuts text to fit maxWidth pixels, marking the cut with "..". */
function fitText(text: string, scale: number, maxWidth: number): string {
  if (textWidth(text, scale) <= maxWidth) return text;
  const chars = [...text];
  while (chars.length > 0 && textWidth(`${chars.join('')}..`, scale) > maxWidth) chars.pop();
  return `${chars.join('')}..`;
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
  const width = options.width ?? DEFAULT_WIDTH;
  const height = options.height ?? DEFAULT_HEIGHT;
  checkSize('width', width, MIN_WIDTH);
  checkSize('height', height, MIN_HEIGHT);
  if (typeof curve !== 'object' || curve === null) throw invalid('curve must be an object {train, validation?}');
  const train = checkedSeries('train', curve.train);
  const validation = checkedSeries('validation', curve.validation);

  const canvas = new RgbCanvas(width, height, COLOURS.background);
  const scale = width >= 480 && height >= 300 ? 2 : 1;
  const lineHeight = GLYPH_HEIGHT * scale;
  const pad = 6 * scale;

  // Top band: title, then the note on non-finite losses, then the y-axis label.
  let top = pad;
  if (options.title) {
    const titleScale = scale + 1;
    const title = fitText(options.title, titleScale, width - 2 * pad);
    canvas.text((width - textWidth(title, titleScale)) / 2, top, title, COLOURS.text, titleScale);
    top += GLYPH_HEIGHT * titleScale + pad;
  }
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

  const plotHeightGuess = height - top - 4 * lineHeight - 6 * pad;
  const yAxis = lossAxis(
    finite.map((point) => point.loss),
    Math.floor(plotHeightGuess / (lineHeight * 3)),
  );
  const yLabel = yAxis.log ? 'loss (log scale)' : 'loss';
  canvas.text(pad, top, yLabel, COLOURS.text, scale);
  top += lineHeight + pad;

  const tickLength = 3 * scale;
  const left = pad + Math.max(...yAxis.ticks.map((tick) => textWidth(tick.label, scale)), 0) + tickLength + pad;
  const right = width - 10 * scale;
  const bottom = height - pad - lineHeight - pad - lineHeight - tickLength - pad;
  const plot = { left, top, right, bottom };
  const xAxis = stepAxis(
    finite.map((point) => point.step),
    Math.floor((right - left) / (textWidth('00000', scale) * 2)),
  );

  const toX = (step: number): number => left + ((step - xAxis.min) / (xAxis.max - xAxis.min)) * (right - left);
  const yOfAxisValue = (value: number): number => bottom - ((value - yAxis.min) / (yAxis.max - yAxis.min)) * (bottom - top);
  const toY = (loss: number): number => yOfAxisValue(yAxis.log ? Math.log10(loss) : loss);

  for (const value of yAxis.minor) canvas.line(left, yOfAxisValue(value), right, yOfAxisValue(value), COLOURS.minorGrid);
  for (const tick of yAxis.ticks) {
    const y = Math.round(yOfAxisValue(tick.value));
    canvas.line(left, y, right, y, COLOURS.grid);
    canvas.line(left - tickLength, y, left, y, COLOURS.frame);
    canvas.text(left - tickLength - pad / 2 - textWidth(tick.label, scale), y - Math.floor((CAP_HEIGHT * scale) / 2), tick.label, COLOURS.text, scale);
  }
  for (const tick of xAxis.ticks) {
    const x = Math.round(toX(tick.value));
    canvas.line(x, top, x, bottom, COLOURS.grid);
    canvas.line(x, bottom, x, bottom + tickLength, COLOURS.frame);
    const labelX = Math.min(Math.max(x - textWidth(tick.label, scale) / 2, 0), width - textWidth(tick.label, scale));
    canvas.text(labelX, bottom + tickLength + pad / 2, tick.label, COLOURS.text, scale);
  }
  canvas.text((left + right - textWidth('step', scale)) / 2, height - pad - lineHeight, 'step', COLOURS.text, scale);
  drawFrame(canvas, plot);

  drawSeries(canvas, train.points, toX, toY, COLOURS.train, scale, false);
  drawSeries(canvas, validation.points, toX, toY, COLOURS.validation, Math.max(1, scale - 1), true);

  const legend: [string, Rgb, boolean][] = [];
  if (train.points.length > 0) legend.push(['train', COLOURS.train, false]);
  if (validation.points.length > 0) legend.push(['validation', COLOURS.validation, true]);
  drawLegend(canvas, plot, legend, scale);

  return encodePngRgb(canvas.pixels, width, height);
}

function drawFrame(canvas: RgbCanvas, { left, top, right, bottom }: { left: number; top: number; right: number; bottom: number }): void {
  canvas.line(left, top, right, top, COLOURS.frame);
  canvas.line(right, top, right, bottom, COLOURS.frame);
  canvas.line(right, bottom, left, bottom, COLOURS.frame);
  canvas.line(left, bottom, left, top, COLOURS.frame);
}

function drawMarker(canvas: RgbCanvas, x: number, y: number, colour: Rgb, size: number): void {
  canvas.fillRect(Math.round(x) - Math.floor(size / 2), Math.round(y) - Math.floor(size / 2), size, size, colour);
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

/** In the plot's top-right corner, where a falling loss curve leaves room. */
function drawLegend(
  canvas: RgbCanvas,
  plot: { left: number; top: number; right: number; bottom: number },
  entries: readonly [string, Rgb, boolean][],
  scale: number,
): void {
  if (entries.length === 0) return;
  const lineHeight = CAP_HEIGHT * scale;
  const gap = 4 * scale;
  const swatch = 12 * scale;
  const textMax = Math.max(...entries.map(([label]) => textWidth(label, scale)));
  const boxWidth = gap + swatch + gap + textMax + gap;
  const boxHeight = gap + entries.length * (lineHeight + gap);
  const boxLeft = plot.right - gap - boxWidth;
  const boxTop = plot.top + gap;
  canvas.fillRect(boxLeft, boxTop, boxWidth, boxHeight, COLOURS.background);
  drawFrame(canvas, { left: boxLeft, top: boxTop, right: boxLeft + boxWidth, bottom: boxTop + boxHeight });
  entries.forEach(([label, colour, markers], index) => {
    const y = boxTop + gap + index * (lineHeight + gap);
    const middle = y + Math.floor(lineHeight / 2);
    canvas.line(boxLeft + gap, middle, boxLeft + gap + swatch, middle, colour, markers ? Math.max(1, scale - 1) : scale);
    if (markers) drawMarker(canvas, boxLeft + gap + swatch / 2, middle, colour, 3 + 2 * Math.max(1, scale - 1));
    canvas.text(boxLeft + gap + swatch + gap, y, label, COLOURS.text, scale);
  });
}
