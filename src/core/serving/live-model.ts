import type { GenerateOptions, GenerationStream } from '../../model/runtime/language-model.js';
import type { ModelInfo } from '../../model/runtime/worker-protocol.js';

/**
 * The model the engine answers with, whichever process runs it: ModelHost loads it here,
 * RemoteModel reaches a `tunebot serve-model` process. Versions are names in the model
 * registry (v1, v2, ...); each side finds a version's folder in its own registry.
 */
export interface LiveModel {
  /** The version serving new requests; null before the first load. */
  readonly version: string | null;
  readonly info: ModelInfo | null;
  /** Makes `version` the one new requests use, once it has loaded; requests in flight finish on the old one. */
  swapTo(version: string): Promise<void>;
  /** Streams from the live version; null when no version is loaded yet. */
  generate(prompt: string, options: GenerateOptions): GenerationStream | null;
  close(): Promise<void>;
}

/** `stream`, calling `onFirst` once, as its reader takes the first piece of text. */
export function onFirstPiece(stream: GenerationStream, onFirst: () => void): GenerationStream {
  let first = true;
  return {
    result: stream.result,
    async *[Symbol.asyncIterator]() {
      for await (const piece of stream) {
        if (first) onFirst();
        first = false;
        yield piece;
      }
    },
  };
}

/**
 * A generation's whole text, trimmed: for replies that are checked before anyone sees them.
 * No stream (generate() found no loaded version) is an empty text.
 */
export async function generatedText(stream: AsyncIterable<string> | null): Promise<string> {
  let text = '';
  for await (const piece of stream ?? []) text += piece;
  return text.trim();
}
