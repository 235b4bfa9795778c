import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../../log.js';
import { ModelError } from '../errors.js';
import { elementCount } from '../tensor.js';

/**
 * The one place that touches ONNX Runtime's session API: provider choice, feed checks and
 * error reporting live here so the rest of src/model speaks in plain tensors.
 */
export type ExecutionProviderChoice = 'cpu' | 'cuda' | 'auto';
export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionOptions {
  readonly executionProvider: ExecutionProviderChoice;
  /** Threads for one operator; 0 lets ONNX Runtime use every core. */
  readonly intraOpThreads?: number;
  /**
   * Keep ONNX Runtime's CPU arena (default true). The arena never gives memory back, so a
   * graph whose working set is large next to what it must keep (training) runs without it.
   */
  readonly memoryArena?: boolean;
  /**
   * Let ONNX Runtime plan a run's intermediate tensors as one block, laid out from the first
   * run (default true). Without it each tensor is allocated when made and freed when last
   * used, which in a run far larger than its inputs (training) keeps less alive at once.
   */
  readonly memoryPattern?: boolean;
  readonly logger: Logger;
}

/** A tensor fed to or returned by a ModelSession: ONNX Runtime's own, named here so callers need not import it. */
export type SessionTensor = ort.Tensor;

/** The element types tunebot feeds, each with the typed array that holds it (bool as one byte per element). */
export type FeedElementType = 'float32' | 'float64' | 'int64' | 'bool';

/** Builds a feed for ModelSession.run; the only way src/ makes a tensor for ONNX Runtime. */
export function feedTensor<T extends FeedElementType>(type: T, data: ort.Tensor.DataTypeMap[T], dims: readonly number[]): SessionTensor {
  // ONNX Runtime's own message for this names neither the type nor the dims.
  if (!dims.every((dim) => Number.isSafeInteger(dim) && dim >= 0) || data.length !== elementCount(dims)) {
    throw new ModelError('MODEL_CORRUPT', `a ${type} tensor of dims [${dims.join(', ')}] cannot hold ${data.length} elements`);
  }
  return new ort.Tensor(type, data, [...dims]);
}

/** Which outputs a run hands back (`only`, default all), and which it writes in place (`into`). */
export interface SessionFetch {
  readonly only?: readonly string[];
  readonly into?: Record<string, SessionTensor>;
}

export interface ModelSession {
  readonly provider: ExecutionProvider;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /**
   * Runs the graph and hands back its outputs, or with `fetch.only` the ones named there:
   * onnxruntime-node copies each output it hands back into a fresh buffer, so a caller that
   * needs a large output only some of the time names what it needs. `fetch.into` names outputs
   * that ONNX Runtime writes into the given tensors (made with feedTensor) instead of buffers of
   * its own; onnxruntime-node still hands back a copy of each, which callers that wrote `into`
   * buffers to save memory discard.
   */
  run(feeds: Record<string, SessionTensor>, fetch?: SessionFetch): Promise<Record<string, SessionTensor>>;
  release(): Promise<void>;
}

export async function createModelSession(model: Uint8Array | string, options: SessionOptions): Promise<ModelSession> {
  const { executionProvider, logger } = options;
  if (executionProvider === 'cuda' || executionProvider === 'auto') {
    const missing = missingCudaLibrary();
    try {
      // Without the provider library ONNX Runtime would only fail louder; say why ourselves.
      if (missing) throw new Error(`${missing} is not installed`);
      const session = await ort.InferenceSession.create(model as Uint8Array, sessionOptions('cuda', options));
      logger.info({ provider: 'cuda' }, 'model session runs on CUDA');
      return wrap(session, 'cuda');
    } catch (error) {
      if (executionProvider === 'cuda') {
        throw new ModelError(
          'PROVIDER_UNAVAILABLE',
          `the CUDA execution provider could not start (${errorMessage(error)}); install onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12 on a machine with CUDA 12, or set model.executionProvider to "cpu" or "auto"`,
          { cause: error },
        );
      }
      logger.info({ reason: errorMessage(error).split('\n')[0] }, 'CUDA is not available, falling back to CPU');
    }
  }
  const session = await ort.InferenceSession.create(model as Uint8Array, sessionOptions('cpu', options));
  logger.info({ provider: 'cpu' }, 'model session runs on CPU');
  return wrap(session, 'cpu');
}

/**
 * onnxruntime-node ships its CUDA provider only when its install script fetched it
 * (ONNXRUNTIME_NODE_INSTALL=cuda12): the library sits beside the binding, here.
 */
export function cudaProviderLibrary(): string {
  const packageRoot = dirname(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')));
  return join(packageRoot, 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so');
}

/** The CUDA provider library's path when it is missing, else null. */
function missingCudaLibrary(): string | null {
  const library = cudaProviderLibrary();
  return existsSync(library) ? null : library;
}

function sessionOptions(provider: ExecutionProvider, options: SessionOptions): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: options.intraOpThreads ?? 0,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    enableCpuMemArena: options.memoryArena ?? true,
    enableMemPattern: options.memoryPattern ?? true,
  };
}

function wrap(session: ort.InferenceSession, provider: ExecutionProvider): ModelSession {
  return {
    provider,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, fetch = {}) {
      const missing = session.inputNames.filter((name) => !(name in feeds));
      const unknown = Object.keys(feeds).filter((name) => !session.inputNames.includes(name));
      if (missing.length > 0 || unknown.length > 0) {
        throw new ModelError(
          'MODEL_CORRUPT',
          `feeds do not match the model's inputs: missing [${missing.join(', ')}], unknown [${unknown.join(', ')}]; the model takes [${session.inputNames.join(', ')}]`,
        );
      }
      const { only = session.outputNames, into = {} } = fetch;
      const unknownOutputs = [...only, ...Object.keys(into)].filter((name) => !session.outputNames.includes(name));
      if (unknownOutputs.length > 0) {
        throw new ModelError('MODEL_CORRUPT', `the model has no outputs [${unknownOutputs.join(', ')}]; it gives [${session.outputNames.join(', ')}]`);
      }
      const unfetched = Object.keys(into).filter((name) => !only.includes(name));
      if (unfetched.length > 0) throw new ModelError('OPTIONS_INVALID', `outputs written in place must be fetched too: [${unfetched.join(', ')}]`);
      // A fetch given as null gets a buffer of ONNX Runtime's; one given as a tensor is written in place.
      const fetches = Object.fromEntries(only.map((name) => [name, into[name] ?? null]));
      try {
        return (await session.run(feeds, fetches)) as Record<string, SessionTensor>;
      } catch (error) {
        const described = Object.entries(feeds)
          .map(([name, tensor]) => `${name}: ${tensor.type}[${tensor.dims.join(', ')}]`)
          .join('; ');
        throw new ModelError('MODEL_CORRUPT', `ONNX Runtime failed: ${errorMessage(error)} (feeds: ${described})`, { cause: error });
      }
    },
    release: () => session.release(),
  };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
