import { CodedError } from '../../coded-error.js';
import type { GenerateBody, SwapBody } from '../../core/serving/model-server-protocol.js';
import { DEFAULT_GENERATION, type GenerationOptions, resolveGenerationOptions } from '../../model/generation/options.js';

/** A body the model server cannot use; its message says what a good one looks like. */
export class RequestError extends CodedError<'REQUEST_INVALID'> {
  constructor(message: string) {
    super('REQUEST_INVALID', message);
  }
}

const OPTION_NAMES: readonly string[] = [...Object.keys(DEFAULT_GENERATION), 'seed'];

/**
 * A generate request's body, checked: the prompt, and options that generation would accept
 * (out-of-range values throw the model's own OPTIONS_INVALID). Unknown options are refused
 * rather than ignored, so that a client's typo does not silently change its replies.
 */
export function parseGenerateBody(body: unknown): GenerateBody {
  if (!isObject(body)) throw new RequestError('the body must be a JSON object: {"prompt": "...", "options": {...}}');
  refuseUnknown(body, ['prompt', 'options'], 'field');
  if (typeof body.prompt !== 'string' || body.prompt === '') throw new RequestError('prompt must be a non-empty string');
  if (body.options === undefined) return { prompt: body.prompt };
  if (!isObject(body.options)) throw new RequestError('options must be a JSON object');
  refuseUnknown(body.options, OPTION_NAMES, 'option');
  // resolveGenerationOptions reads any truthy greedy as true; over the wire it must be a boolean.
  if (body.options.greedy !== undefined && typeof body.options.greedy !== 'boolean') throw new RequestError('greedy must be true or false');
  const options = body.options as GenerationOptions;
  resolveGenerationOptions(options);
  return { prompt: body.prompt, options };
}

export function parseSwapBody(body: unknown): SwapBody {
  if (!isObject(body) || typeof body.version !== 'string' || body.version === '') {
    throw new RequestError('the body must be a JSON object naming a registry version: {"version": "v2"}');
  }
  refuseUnknown(body, ['version'], 'field');
  return { version: body.version };
}

function refuseUnknown(object: Record<string, unknown>, known: readonly string[], what: string): void {
  const unknown = Object.keys(object).find((key) => !known.includes(key));
  if (unknown !== undefined) throw new RequestError(`unknown ${what} "${unknown}"; the ${what}s are ${known.join(', ')}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
