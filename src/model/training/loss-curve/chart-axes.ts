import { ModelError } from '../../errors.js';
import { CAP_HEIGHT, GLYPH_HEIGHT, type RgbCanvas, textWidth, type Rgb } from './raster.js';

/**
 * The pieces every chart the project draws shares (the fine-tune loss curve, bench:answer-curve's
 * answer quality): size checks, a title, axes with nice ticks, grid, labels and frame, markers and
 * a legend. A chart builds its own axes (linear, log) and draws its own series on the plot.
 */

export const CHART_COLOURS = {
  background: [255, 255, 255],
  frame: [90, 90, 90],
  grid: [228, 228, 228],
  minorGrid: [243, 243, 243],
  text: [40, 40, 40],
  warning: [200, 30, 30],
} as const satisfies Record<string, Rgb>;

/** Series colours in order (matplotlib's first four), distinct for the common kinds of colour blindness in pairs. */
export const SERIES_COLOURS = [
  [31, 119, 180],
  [230, 110, 0],
  [44, 160, 44],
  [148, 103, 189],
] as const satisfies readonly Rgb[];

export const DEFAULT_CHART_WIDTH = 800;
export const DEFAULT_CHART_HEIGHT = 500;
const MIN_WIDTH = 240;
const MIN_HEIGHT = 160;
const MAX_SIDE = 4096;

export interface Tick {
  readonly value: number;
  readonly label: string;
}

export interface Axis {
  /** Written beside the axis: the y axis's above the plot, the x axis's below it. */
  readonly label: string;
  readonly min: number;
  readonly max: number;
  readonly ticks: readonly Tick[];
  /** Grid lines without a label (log scale's 2..9 multiples). */
  readonly minor: readonly number[];
  readonly log: boolean;
}

export interface PlotArea {
  readonly left: number;
  readonly top: number;
  readonly right: number;
  readonly bottom: number;
}

/** The plot drawn by drawAxes, with its axes and the pixel position of an axis value. */
export interface Plot extends PlotArea {
  readonly xAxis: Axis;
  readonly yAxis: Axis;
  toX(value: number): number;
  toY(value: number): number;
}

/** Font scale 2 where the picture has room for it. */
export function chartScale(width: number, height: number): number {
  return width >= 480 && height >= 300 ? 2 : 1;
}

export function chartPadding(scale: number): number {
  return 6 * scale;
}

/** An OPTIONS_INVALID error unless width and height are integers a chart can be drawn in. */
export function checkChartSize(chart: string, width: number, height: number): void {
  for (const [name, value, min] of [
    ['width', width, MIN_WIDTH],
    ['height', height, MIN_HEIGHT],
  ] as const) {
    if (!Number.isInteger(value) || value < min || value > MAX_SIDE) {
      throw new ModelError('OPTIONS_INVALID', `${chart}: ${name} must be an integer in [${min}, ${MAX_SIDE}], got ${value}`);
    }
  }
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

/** About count ticks at nice steps within [min, max]; integerSteps keeps the step at 1 or more. */
export function linearTicks(min: number, max: number, count: number, integerSteps: boolean): Tick[] {
  let step = niceStep(max - min, count);
  if (integerSteps) step = Math.max(1, step);
  const ticks: Tick[] = [];
  for (let i = Math.ceil(min / step - 1e-9); i * step <= max + step * 1e-9; i++) {
    const value = Math.abs(i * step) < step * 1e-9 ? 0 : i * step;
    ticks.push({ value, label: formatLinear(value, step) });
  }
  return ticks;
}

/** Cuts text to fit maxWidth pixels, marking the cut with "..". */
export function fitText(text: string, scale: number, maxWidth: number): string {
  if (textWidth(text, scale) <= maxWidth) return text;
  const chars = [...text];
  while (chars.length > 0 && textWidth(`${chars.join('')}..`, scale) > maxWidth) chars.pop();
  return `${chars.join('')}..`;
}

/** The title centred at the top, a size larger than the rest; returns the y below it. */
export function drawTitle(canvas: RgbCanvas, title: string, scale: number): number {
  const pad = chartPadding(scale);
  const titleScale = scale + 1;
  const fitted = fitText(title, titleScale, canvas.width - 2 * pad);
  canvas.text((canvas.width - textWidth(fitted, titleScale)) / 2, pad, fitted, CHART_COLOURS.text, titleScale);
  return pad + GLYPH_HEIGHT * titleScale + pad;
}

/**
 * The axes below y = top: the y axis's label, then the plot with its grid, ticks, tick labels
 * and frame, and the x axis's label at the bottom. Each axis is built for about as many labelled
 * ticks as fit the plot's size.
 */
export function drawAxes(
  canvas: RgbCanvas,
  options: { readonly top: number; readonly scale: number; readonly x: (tickCount: number) => Axis; readonly y: (tickCount: number) => Axis },
): Plot {
  const { width, height } = canvas;
  const { scale } = options;
  const lineHeight = GLYPH_HEIGHT * scale;
  const pad = chartPadding(scale);
  let top = options.top;

  const plotHeightGuess = height - top - 4 * lineHeight - 6 * pad;
  const yAxis = options.y(Math.floor(plotHeightGuess / (lineHeight * 3)));
  canvas.text(pad, top, fitText(yAxis.label, scale, width - 2 * pad), CHART_COLOURS.text, scale);
  top += lineHeight + pad;

  const tickLength = 3 * scale;
  const left = pad + Math.max(...yAxis.ticks.map((tick) => textWidth(tick.label, scale)), 0) + tickLength + pad;
  const right = width - 10 * scale;
  const bottom = height - pad - lineHeight - pad - lineHeight - tickLength - pad;
  const xAxis = options.x(Math.floor((right - left) / (textWidth('00000', scale) * 2)));

  const toX = (value: number): number => left + ((value - xAxis.min) / (xAxis.max - xAxis.min)) * (right - left);
  const toY = (value: number): number => bottom - ((value - yAxis.min) / (yAxis.max - yAxis.min)) * (bottom - top);

  for (const value of yAxis.minor) canvas.line(left, toY(value), right, toY(value), CHART_COLOURS.minorGrid);
  for (const tick of yAxis.ticks) {
    const y = Math.round(toY(tick.value));
    canvas.line(left, y, right, y, CHART_COLOURS.grid);
    canvas.line(left - tickLength, y, left, y, CHART_COLOURS.frame);
    canvas.text(left - tickLength - pad / 2 - textWidth(tick.label, scale), y - Math.floor((CAP_HEIGHT * scale) / 2), tick.label, CHART_COLOURS.text, scale);
  }
  for (const tick of xAxis.ticks) {
    const x = Math.round(toX(tick.value));
    canvas.line(x, top, x, bottom, CHART_COLOURS.grid);
    canvas.line(x, bottom, x, bottom + tickLength, CHART_COLOURS.frame);
    const labelX = Math.min(Math.max(x - textWidth(tick.label, scale) / 2, 0), width - textWidth(tick.label, scale));
    canvas.text(labelX, bottom + tickLength + pad / 2, tick.label, CHART_COLOURS.text, scale);
  }
  const xLabel = fitText(xAxis.label, scale, width - 2 * pad);
  canvas.text((left + right - textWidth(xLabel, scale)) / 2, height - pad - lineHeight, xLabel, CHART_COLOURS.text, scale);
  const plot = { left, top, right, bottom };
  drawFrame(canvas, plot);
  return { ...plot, xAxis, yAxis, toX, toY };
}

export function drawFrame(canvas: RgbCanvas, { left, top, right, bottom }: PlotArea, colour: Rgb = CHART_COLOURS.frame): void {
  canvas.line(left, top, right, top, colour);
  canvas.line(right, top, right, bottom, colour);
  canvas.line(right, bottom, left, bottom, colour);
  canvas.line(left, bottom, left, top, colour);
}

/** A filled square of size pixels centred on (x, y). */
export function drawMarker(canvas: RgbCanvas, x: number, y: number, colour: Rgb, size: number): void {
  canvas.fillRect(Math.round(x) - Math.floor(size / 2), Math.round(y) - Math.floor(size / 2), size, size, colour);
}

export interface LegendEntry {
  readonly label: string;
  readonly colour: Rgb;
  /** The swatch's line; left out: the marker alone. */
  readonly line?: { readonly thickness: number; readonly dash?: readonly [number, number] };
  /** A marker of this size in the swatch's middle, framed in outline's colour when given. */
  readonly marker?: { readonly size: number; readonly outline?: Rgb };
}

/** A framed box of swatches and labels in a corner of the plot, where the chart's data leaves room. */
export function drawLegend(canvas: RgbCanvas, plot: PlotArea, entries: readonly LegendEntry[], scale: number, corner: 'top-right' | 'bottom-right'): void {
  if (entries.length === 0) return;
  const lineHeight = CAP_HEIGHT * scale;
  const gap = 4 * scale;
  const swatch = 12 * scale;
  const textMax = Math.max(...entries.map((entry) => textWidth(entry.label, scale)));
  const boxWidth = gap + swatch + gap + textMax + gap;
  const boxHeight = gap + entries.length * (lineHeight + gap);
  const boxLeft = plot.right - gap - boxWidth;
  const boxTop = corner === 'top-right' ? plot.top + gap : plot.bottom - gap - boxHeight;
  canvas.fillRect(boxLeft, boxTop, boxWidth, boxHeight, CHART_COLOURS.background);
  drawFrame(canvas, { left: boxLeft, top: boxTop, right: boxLeft + boxWidth, bottom: boxTop + boxHeight });
  entries.forEach((entry, index) => {
    const y = boxTop + gap + index * (lineHeight + gap);
    const middle = y + Math.floor(lineHeight / 2);
    if (entry.line) canvas.line(boxLeft + gap, middle, boxLeft + gap + swatch, middle, entry.colour, entry.line.thickness, entry.line.dash);
    if (entry.marker) drawOutlinedMarker(canvas, boxLeft + gap + swatch / 2, middle, entry.colour, entry.marker.size, entry.marker.outline);
    canvas.text(boxLeft + gap + swatch + gap, y, entry.label, CHART_COLOURS.text, scale);
  });
}

/** drawMarker, framed one pixel wider in outline's colour when given. */
export function drawOutlinedMarker(canvas: RgbCanvas, x: number, y: number, colour: Rgb, size: number, outline?: Rgb): void {
  if (outline) drawMarker(canvas, x, y, outline, size + 2);
  drawMarker(canvas, x, y, colour, size);
}
