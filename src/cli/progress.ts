import { byteScale, formatBytes, scaledBytes } from '../byte-size.js';

/** Where a progress bar writes: process.stderr, or anything with write (and isTTY to redraw in place). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressBar {
  /** done: units completed so far (bytes, or steps with unit 'count'); detail: shown after the ETA. */
  update(done: number, detail?: string): void;
  /** Draws the last state and ends the line; later calls do nothing. */
  finish(): void;
}

export interface ProgressBarOptions {
  /** 'bytes' shows "12.3/27.3 MB 3.1 MB/s"; 'count' shows "120/1000 2.5/s". Default 'bytes'. */
  unit?: 'bytes' | 'count';
  /** Milliseconds clock; tests pass their own. */
  now?: () => number;
}

const BAR_WIDTH = 20;
const REDRAW_INTERVAL_MS = 100;
// Logs and CI output get a line per tenth of the work, and no more than one every two seconds.
const LOG_INTERVAL_MS = 2000;

export function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  if (whole < 60) return `${whole}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** Renders `label [#####.....] 45% 12.3/27.3 MB 3.1 MB/s ETA 5s`. */
export function createProgressBar(
  label: string,
  total: number,
  stream: ProgressStream = process.stderr,
  options: ProgressBarOptions = {},
): ProgressBar {
  const unit = options.unit ?? 'bytes';
  const now = options.now ?? Date.now;
  const redraws = stream.isTTY === true;
  let done = 0;
  let detail: string | undefined;
  let start: { time: number; done: number } | undefined;
  let lastWrite = -Infinity;
  let lastTenth = -1;
  let writtenDone: number | undefined;
  let finished = false;

  const render = (time: number): string => {
    const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
    const filled = Math.round(fraction * BAR_WIDTH);
    const parts = [label, `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`, `${Math.floor(fraction * 100)}%`];
    if (unit === 'bytes') {
      const { divisor, unit: name } = byteScale(total);
      parts.push(`${scaledBytes(done, divisor)}/${scaledBytes(total, divisor)} ${name}`);
    } else {
      parts.push(`${done}/${total}`);
    }
    const elapsedSeconds = start ? (time - start.time) / 1000 : 0;
    const rate = start && elapsedSeconds > 0 ? (done - start.done) / elapsedSeconds : 0;
    if (rate > 0) {
      parts.push(unit === 'bytes' ? `${formatBytes(rate)}/s` : `${rate.toFixed(1)}/s`);
      if (done < total) parts.push(`ETA ${formatDuration((total - done) / rate)}`);
    }
    if (detail) parts.push(detail);
    return parts.join(' ');
  };

  return {
    update(value, newDetail) {
      if (finished) return;
      const time = now();
      start ??= { time, done: value };
      done = value;
      detail = newDetail ?? detail;
      if (redraws) {
        if (time - lastWrite < REDRAW_INTERVAL_MS && done < total) return;
        stream.write(`\r${render(time)}\x1b[K`);
        lastWrite = time;
        return;
      }
      const tenth = total > 0 ? Math.floor((Math.min(done, total) / total) * 10) : 0;
      if (tenth <= lastTenth || time - lastWrite < LOG_INTERVAL_MS) return;
      stream.write(`${render(time)}\n`);
      lastWrite = time;
      lastTenth = tenth;
      writtenDone = done;
    },
    finish() {
      if (finished) return;
      finished = true;
      const line = render(now());
      if (redraws) stream.write(`\r${line}\x1b[K\n`);
      else if (writtenDone !== done) stream.write(`${line}\n`);
    },
  };
}
