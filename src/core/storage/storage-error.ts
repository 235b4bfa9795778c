import { CodedError } from '../../coded-error.js';

/** Every failure the storage layer reports carries a stable code, so callers can branch on it. */
export type StorageErrorCode =
  /** The configured store cannot be reached or opened. */
  | 'STORAGE_UNAVAILABLE'
  /** The storage URL names no supported store. */
  | 'STORAGE_URL_INVALID'
  /** A stored record does not have the shape this code writes. */
  | 'STORAGE_CORRUPT'
  /** An update kept losing its compare-and-swap to other writers. */
  | 'STORAGE_CONFLICT'
  /** A turn or a window handed to memory is malformed. */
  | 'TURN_INVALID';

export class StorageError extends CodedError<StorageErrorCode> {}
