import type { ModelErrorCode } from '../../model/errors.js';
import type { GenerationOptions } from '../../model/generation/options.js';
import type { GenerationResult } from '../../model/generation/scheduler.js';
import type { ModelInfo } from '../../model/runtime/worker-protocol.js';

/**
 * The HTTP API of `tunebot serve-model`, shared by its server (adapters/model-server) and its
 * client (RemoteModel). Bodies are JSON; failures are ErrorBody.
 *   GET  /v1/model     -> 200 ModelDescription; 503 before a model is loaded
 *   POST /v1/generate  GenerateBody -> 200 application/x-ndjson, one GenerateLine a line: text
 *                      pieces, then `done` or `error`; VERSION_HEADER names the version that
 *                      generates. 400 bad body or options, 413 too large, 503 no model.
 *                      Closing the connection cancels the generation.
 *   POST /v1/model     SwapBody -> 200 ModelDescription once that version serves new requests;
 *                      400 bad body, 404 no such version in the server's registry
 *   GET  /healthz      200 "ok" with a model loaded, 503 and the reason otherwise
 *   GET  /metrics      Prometheus text format
 */
export const MODEL_PATH = '/v1/model';
export const GENERATE_PATH = '/v1/generate';
export const VERSION_HEADER = 'x-tunebot-model-version';
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

export interface ModelDescription {
  readonly version: string;
  readonly info: ModelInfo;
}

export interface GenerateBody {
  readonly prompt: string;
  readonly options?: GenerationOptions;
}

export interface SwapBody {
  readonly version: string;
}

/**
 * A ModelErrorCode (the model's own failures and OPTIONS_INVALID), REGISTRY (a version the
 * registry does not have), or one of the server's codes for a request it cannot read.
 */
export type WireErrorCode = ModelErrorCode | 'REGISTRY' | 'REQUEST_INVALID' | 'BODY_TOO_LARGE' | 'ROUTE_NOT_FOUND';

export interface WireError {
  readonly code: WireErrorCode;
  readonly message: string;
}

export interface ErrorBody {
  readonly error: WireError;
}

export type GenerateLine = { readonly text: string } | { readonly done: GenerationResult } | { readonly error: WireError };
