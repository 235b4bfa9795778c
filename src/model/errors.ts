import { CodedError } from '../coded-error.js';

/**
 * Every failure the model layer reports carries a stable code, so callers can branch on it.
 * The list exists at run time too: a model server sends codes over HTTP, and its client checks them.
 */
export const MODEL_ERROR_CODES = [
  'MODEL_NOT_FOUND',
  'MODEL_CORRUPT',
  'CONFIG_INVALID',
  'WEIGHTS_MISMATCH',
  'TOKENIZER_INVALID',
  'OPTIONS_INVALID',
  'DATA_INVALID',
  'HUB_OFFLINE',
  'HUB_ERROR',
  'DOWNLOAD_CORRUPT',
  'PROVIDER_UNAVAILABLE',
  'ABORTED',
  'WORKER_FAILED',
  'TRAINING_DIVERGED',
  'OUT_OF_MEMORY',
  'CANCELLED',
  /** A model server (`tunebot serve-model`) cannot be reached, or went away mid-reply. */
  'MODEL_SERVER_UNAVAILABLE',
  /** A model server answered with something its client does not understand. */
  'MODEL_SERVER_ERROR',
] as const;

export type ModelErrorCode = (typeof MODEL_ERROR_CODES)[number];

export class ModelError extends CodedError<ModelErrorCode> {}

/** A ModelError as it crosses to another thread or process: its code and message. */
export interface SerializedModelError {
  readonly code: ModelErrorCode;
  readonly message: string;
}

/** A ModelError keeps its code; anything else (a bug, a crash) becomes WORKER_FAILED with its message. */
export function serializeModelError(error: unknown): SerializedModelError {
  if (error instanceof ModelError) return { code: error.code, message: error.message };
  return { code: 'WORKER_FAILED', message: error instanceof Error ? error.message : String(error) };
}
