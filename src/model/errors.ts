import { CodedError } from '../coded-error.js';

/** Every failure the model layer reports carries a stable code, so callers can branch on it. */
export type ModelErrorCode =
  | 'MODEL_NOT_FOUND'
  | 'MODEL_CORRUPT'
  | 'CONFIG_INVALID'
  | 'WEIGHTS_MISMATCH'
  | 'TOKENIZER_INVALID'
  | 'OPTIONS_INVALID'
  | 'DATA_INVALID'
  | 'HUB_OFFLINE'
  | 'HUB_ERROR'
  | 'DOWNLOAD_CORRUPT'
  | 'PROVIDER_UNAVAILABLE'
  | 'ABORTED'
  | 'WORKER_FAILED'
  | 'TRAINING_DIVERGED'
  | 'OUT_OF_MEMORY'
  | 'CANCELLED';

export class ModelError extends CodedError<ModelErrorCode> {}
