import type { Gpt2Config } from '../config.js';
import type { GenerationOptions } from '../generation/options.js';
import type { GenerationResult } from '../generation/scheduler.js';
import type { SerializedModelError } from '../errors.js';
import type { WeightType } from '../quantize.js';
import type { ExecutionProvider, ExecutionProviderChoice } from './session.js';

/** Messages between the main thread (language-model.ts) and the model worker (model-worker.ts). */
export interface WorkerInit {
  readonly modelDir: string;
  readonly executionProvider: ExecutionProviderChoice;
  readonly intraOpThreads: number;
  readonly weights: WeightType;
  readonly maxBatchSize: number;
  readonly prefillChunkTokens: number;
  readonly logLevel: string;
}

export type ToWorker =
  | { readonly type: 'generate'; readonly id: number; readonly prompt: string | readonly number[]; readonly options: GenerationOptions }
  | { readonly type: 'cancel'; readonly id: number }
  | { readonly type: 'close' };

export interface ModelInfo {
  readonly modelDir: string;
  readonly provider: ExecutionProvider;
  readonly config: Gpt2Config;
  readonly parameters: number;
  readonly loadMs: number;
}


export type FromWorker =
  | { readonly type: 'ready'; readonly info: ModelInfo }
  | { readonly type: 'failed'; readonly error: SerializedModelError }
  | { readonly type: 'text'; readonly id: number; readonly text: string }
  | { readonly type: 'end'; readonly id: number; readonly result: GenerationResult }
  | { readonly type: 'error'; readonly id: number; readonly error: SerializedModelError }
  | { readonly type: 'closed' };
