import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CodedError } from '../coded-error.js';
import type { ExecutionProviderChoice } from '../model/runtime/session.js';

/** A command-line mistake: printed with the command's usage, exit code 2. */
export class UsageError extends CodedError<'USAGE'> {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export interface CliCommand {
  /** Words that select the command, e.g. ['model', 'init']. */
  readonly words: readonly string[];
  readonly usage: string;
  readonly summary: string;
  run(args: readonly string[]): Promise<void>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util's parseArgs, with its errors turned into UsageErrors that name the command. */
export function parseCommandArgs<T extends Options>(args: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function integerOption(value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${value}"`);
  return parsed;
}

/** --port: a TCP port (0 picks a free one), else `configured`. */
export function portOption(value: string | undefined, configured: number): number {
  if (value === undefined) return configured;
  const port = Number(value);
  if (value.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0-65535, got "${value}"`);
  return port;
}

export function numberOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) throw new UsageError(`--${name} must be a number, got "${value}"`);
  return parsed;
}

/** --device, falling back to the configured execution provider. */
export function deviceOption(value: string | undefined, configured: ExecutionProviderChoice): ExecutionProviderChoice {
  const device = value ?? configured;
  if (device !== 'cpu' && device !== 'cuda' && device !== 'auto') throw new UsageError(`--device must be cpu, cuda or auto, got "${device}"`);
  return device;
}
