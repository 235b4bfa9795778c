import { type Logger, pino } from 'pino';

/** One parsed pino line. */
export interface LogRecord {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A debug-level logger whose lines are kept, parsed, in `records`. */
export function captureLogger(): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as LogRecord) });
  return { logger, records };
}
