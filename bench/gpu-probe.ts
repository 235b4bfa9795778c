/**
 * What bench/gpu-check.ts asks of the machine before it measures anything, each failure a
 * GpuCheckError that says what to install: an NVIDIA driver (nvidia-smi lists a GPU),
 * onnxruntime-node's CUDA provider with every library it links against, and a session that
 * reports CUDA and computes a product right on it. Also nvidia-smi's count of GPU memory in
 * use: the check's sign, independent of ONNX Runtime's word, that a model went to the GPU.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { CodedError } from '../src/coded-error.js';
import type { Logger } from '../src/log.js';
import { ModelError } from '../src/model/errors.js';
import { encodeModel } from '../src/model/onnx/encode.js';
import { GraphBuilder } from '../src/model/onnx/graph.js';
import { type ModelSession, createModelSession, cudaProviderLibrary, feedTensor } from '../src/model/runtime/session.js';

const run = promisify(execFile);

export type GpuCheckCode = 'NO_NVIDIA_DRIVER' | 'NO_CUDA_PROVIDER' | 'CUDA_NOT_USED' | 'RESULTS_DIFFER';

export class GpuCheckError extends CodedError<GpuCheckCode> {}

/** How to get the provider, for every message that finds it missing. */
export const CUDA_PROVIDER_INSTALL =
  'install it with `ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` ' +
  '(the install script that `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` runs where install scripts are on; ' +
  'it downloads the provider from NuGet), or run in the Dockerfile\'s GPU image (`docker build --build-arg TARGET=cuda -t tunebot:cuda .`)';

export interface Gpu {
  readonly name: string;
  readonly driver: string;
  readonly memoryMib: number;
}

export interface CudaProbe {
  readonly gpus: readonly Gpu[];
  /** A session on CUDA, held open so the process's CUDA context exists before any memory is counted. */
  readonly session: ModelSession | null;
  readonly problems: readonly GpuCheckError[];
}

/** Every check, each problem found (not only the first): a machine often lacks several things at once. */
export async function probeCuda(logger: Logger): Promise<CudaProbe> {
  const problems: GpuCheckError[] = [];
  let gpus: Gpu[] = [];
  try {
    gpus = await listGpus();
  } catch (error) {
    problems.push(error as GpuCheckError);
  }
  const library = cudaProviderLibrary();
  if (!existsSync(library)) {
    problems.push(new GpuCheckError('NO_CUDA_PROVIDER', `onnxruntime-node has no CUDA provider (${library} is missing); ${CUDA_PROVIDER_INSTALL}`));
    return { gpus, session: null, problems };
  }
  const unresolved = await unresolvedLibraries(library);
  if (unresolved.length > 0) {
    problems.push(
      new GpuCheckError(
        'NO_CUDA_PROVIDER',
        `the CUDA provider cannot load: ${unresolved.join(', ')} not found; it needs CUDA 12's runtime, cuBLAS, cuFFT and cuRAND and cuDNN 9 ` +
          'on the library path (LD_LIBRARY_PATH), as the Dockerfile\'s GPU image has them (nvidia/cuda 12 with cuDNN 9)',
      ),
    );
  }
  let session: ModelSession | null = null;
  try {
    session = await squareOnCuda(logger);
  } catch (error) {
    problems.push(error instanceof GpuCheckError ? error : new GpuCheckError('NO_CUDA_PROVIDER', messageOf(error), { cause: error }));
  }
  return { gpus, session, problems };
}

async function listGpus(): Promise<Gpu[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader,nounits']));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new GpuCheckError('NO_NVIDIA_DRIVER', 'nvidia-smi is not on PATH: this machine has no NVIDIA driver, and the check needs an NVIDIA GPU');
    }
    throw new GpuCheckError('NO_NVIDIA_DRIVER', `nvidia-smi failed: ${outputOf(error)}`);
  }
  const gpus = stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [name, driver, memory] = line.split(',').map((field) => field.trim());
      return { name, driver, memoryMib: Number(memory) };
    });
  if (gpus.length === 0) throw new GpuCheckError('NO_NVIDIA_DRIVER', 'nvidia-smi lists no GPU');
  return gpus;
}

/** The libraries `library` links against that the dynamic loader cannot find (none when ldd itself is missing). */
async function unresolvedLibraries(library: string): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('ldd', [library]));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    // ldd exits non-zero on some missing libraries and still lists them.
    stdout = (error as { stdout?: string }).stdout ?? '';
  }
  return [...stdout.matchAll(/^\s*(\S+) => not found/gm)].map((match) => match[1]);
}

/**
 * A 2x2 MatMul in a session asked to run on CUDA: the session must report CUDA (ONNX Runtime
 * registered the provider) and return [[7, 10], [15, 22]] for [[1, 2], [3, 4]] squared.
 */
async function squareOnCuda(logger: Logger): Promise<ModelSession> {
  const g = new GraphBuilder('cuda_probe');
  const x = g.input('x', 'float32', [2, 2]);
  g.output(g.op('MatMul', [x, x]), 'square', 'float32', [2, 2]);
  let session: ModelSession;
  try {
    session = await createModelSession(encodeModel(g.build()), { executionProvider: 'cuda', logger });
  } catch (error) {
    const hint = error instanceof ModelError && error.code === 'PROVIDER_UNAVAILABLE' ? `; ${CUDA_PROVIDER_INSTALL}` : '';
    throw new GpuCheckError('NO_CUDA_PROVIDER', `${messageOf(error)}${hint}`, { cause: error });
  }
  if (session.provider !== 'cuda') {
    await session.release();
    throw new GpuCheckError('CUDA_NOT_USED', `a session asked for CUDA reports ${session.provider}`);
  }
  const { square } = await session.run({ x: feedTensor('float32', Float32Array.of(1, 2, 3, 4), [2, 2]) });
  const values = [...(square.data as Float32Array)];
  if (values.join() !== '7,10,15,22') {
    await session.release();
    throw new GpuCheckError('RESULTS_DIFFER', `the CUDA probe squared [[1, 2], [3, 4]] into [${values.join(', ')}], not [7, 10, 15, 22]`);
  }
  return session;
}

/** GPU memory in use on every GPU together, as nvidia-smi counts it. */
export async function gpuMemoryUsedMib(): Promise<number> {
  const { stdout } = await run('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits']);
  const fields = stdout.split('\n').filter((line) => line.trim() !== '');
  const unreadable = fields.find((field) => !Number.isFinite(Number(field)));
  if (fields.length === 0 || unreadable !== undefined) {
    throw new GpuCheckError('CUDA_NOT_USED', `nvidia-smi gives the GPU memory in use as "${unreadable ?? ''}", so whether a model went to the GPU cannot be counted`);
  }
  return fields.reduce((sum, field) => sum + Number(field), 0);
}

function outputOf(error: unknown): string {
  const { stdout, stderr } = error as { stdout?: string; stderr?: string };
  const text = `${stderr ?? ''}${stdout ?? ''}`.trim().split('\n')[0];
  return text || messageOf(error);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
