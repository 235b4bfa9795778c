import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { ModelError, type ModelErrorCode } from '../../../src/model/errors.js';
import { LanguageModel } from '../../../src/model/runtime/language-model.js';
import { initModel } from '../../../src/model/files/model-dir.js';
import { encodeModel } from '../../../src/model/onnx/encode.js';
import { GraphBuilder } from '../../../src/model/onnx/graph.js';
import { type ExecutionProviderChoice, type ModelSession, createModelSession, feedTensor } from '../../../src/model/runtime/session.js';
import { captureLogger } from '../../helpers/capture-logger.js';

/**
 * These tests expect a machine without ONNX Runtime's CUDA provider library, which is what
 * `npm install` gives unless ONNXRUNTIME_NODE_INSTALL=cuda12 is set. Where the library is
 * present, the CUDA-unavailable cases are skipped rather than asserting the wrong thing.
 */
const ortBinaryDir = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
const cudaInstalled = existsSync(join(ortBinaryDir, 'libonnxruntime_providers_cuda.so'));
const withoutCuda = cudaInstalled ? { skip: 'the CUDA provider library is installed here' } : {};

/** Y = X + W with W = [1, 2, 3]: a graph small enough to build and load in milliseconds. */
function addGraph(): Uint8Array {
  const graph = new GraphBuilder('add');
  const x = graph.input('X', 'float32', [3]);
  const w = graph.weight('W', { dims: [3], data: Float32Array.from([1, 2, 3]) });
  graph.output(graph.op('Add', [x, w]), 'Y', 'float32', [3]);
  return encodeModel(graph.build());
}

async function rejectsWithCode(promise: Promise<unknown>, code: ModelErrorCode): Promise<ModelError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ModelError, `expected a ModelError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected a ModelError ${code}`);
}

const floats = (values: number[]) => feedTensor('float32', Float32Array.from(values), [values.length]);

describe('createModelSession: execution provider', () => {
  const model = addGraph();

  async function open(executionProvider: ExecutionProviderChoice) {
    const { logger, records } = captureLogger();
    const session = await createModelSession(model, { executionProvider, logger });
    return { session, records };
  }

  it('"cpu" runs on CPU and logs it', async () => {
    const { session, records } = await open('cpu');
    try {
      assert.equal(session.provider, 'cpu');
      assert.deepEqual([session.inputNames, session.outputNames], [['X'], ['Y']]);
      const { Y } = await session.run({ X: floats([10, 20, 30]) });
      assert.deepEqual(Array.from(Y.data as Float32Array), [11, 22, 33]);
      assert.deepEqual(
        records.map((r) => [r.msg, r.provider]),
        [['model session runs on CPU', 'cpu']],
      );
    } finally {
      await session.release();
    }
  });

  it('"auto" falls back to CPU and says why', withoutCuda, async () => {
    const { session, records } = await open('auto');
    try {
      assert.equal(session.provider, 'cpu');
      const { Y } = await session.run({ X: floats([0, 0, 0]) });
      assert.deepEqual(Array.from(Y.data as Float32Array), [1, 2, 3]);
      assert.equal(records.length, 2, JSON.stringify(records));
      assert.match(records[0].msg, /CUDA is not available/);
      assert.equal(typeof records[0].reason, 'string');
      assert.ok((records[0].reason as string).length > 0, 'the fallback names its reason');
      assert.match(records[1].msg, /runs on CPU/);
      assert.equal(records[1].provider, 'cpu');
    } finally {
      await session.release();
    }
  });

  it('"cuda" fails with PROVIDER_UNAVAILABLE, says how to get CUDA and names the alternatives', withoutCuda, async () => {
    const { logger, records } = captureLogger();
    const error = await rejectsWithCode(createModelSession(model, { executionProvider: 'cuda', logger }), 'PROVIDER_UNAVAILABLE');
    assert.match(error.message, /CUDA/);
    assert.match(error.message, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
    assert.match(error.message, /"cpu"/);
    assert.match(error.message, /"auto"/);
    assert.ok(error.cause, 'the ONNX Runtime error is kept as the cause');
    assert.ok(!records.some((r) => /runs on/.test(r.msg)), 'no session was reported as running');
  });

  it('LanguageModel.load with "cuda" rejects with PROVIDER_UNAVAILABLE', withoutCuda, async () => {
    const root = await mkdtemp(join(tmpdir(), 'tunebot-session-'));
    try {
      const dir = join(root, 'tiny');
      await initModel(dir, 'tiny', 1);
      const error = await rejectsWithCode(LanguageModel.load(dir, { executionProvider: 'cuda', logLevel: 'silent' }), 'PROVIDER_UNAVAILABLE');
      assert.match(error.message, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('ModelSession.run: feeds and failures', () => {
  let session: ModelSession;
  before(async () => {
    session = await createModelSession(addGraph(), { executionProvider: 'cpu', logger: captureLogger().logger });
  });
  after(async () => {
    await session.release();
  });

  it('a missing input is named along with the inputs the model takes', async () => {
    const error = await rejectsWithCode(session.run({}), 'MODEL_CORRUPT');
    assert.match(error.message, /missing \[X\], unknown \[\]/);
    assert.match(error.message, /the model takes \[X\]/);
  });

  it('an unknown input is named, and so is the input it displaced', async () => {
    const error = await rejectsWithCode(session.run({ x: floats([1, 2, 3]) }), 'MODEL_CORRUPT');
    assert.match(error.message, /missing \[X\], unknown \[x\]/);
    assert.match(error.message, /the model takes \[X\]/);
  });

  it('an extra input beside the right ones is refused', async () => {
    const error = await rejectsWithCode(session.run({ X: floats([1, 2, 3]), past: floats([0]) }), 'MODEL_CORRUPT');
    assert.match(error.message, /missing \[\], unknown \[past\]/);
  });

  it('a run that ONNX Runtime rejects reports each feed\'s type and dims', async () => {
    const wrongDims = feedTensor('float32', new Float32Array(8), [2, 4]);
    const error = await rejectsWithCode(session.run({ X: wrongDims }), 'MODEL_CORRUPT');
    assert.match(error.message, /^ONNX Runtime failed: /);
    assert.match(error.message, /\(feeds: X: float32\[2, 4\]\)$/);
    assert.ok(error.cause instanceof Error);
  });

  it('a feed of the wrong element type is reported with its type', async () => {
    const ints = feedTensor('int64', BigInt64Array.from([1n, 2n, 3n]), [3]);
    const error = await rejectsWithCode(session.run({ X: ints }), 'MODEL_CORRUPT');
    assert.match(error.message, /feeds: X: int64\[3\]/);
  });

  it('still runs after the failures above', async () => {
    const { Y } = await session.run({ X: floats([-1, -2, -3]) });
    assert.deepEqual(Array.from(Y.data as Float32Array), [0, 0, 0]);
  });
});

describe('ModelSession.run: which outputs come back', () => {
  let session: ModelSession;
  before(async () => {
    // Y = X + [1, 2, 3] and Z = X * X
    const graph = new GraphBuilder('two_outputs');
    const x = graph.input('X', 'float32', [3]);
    graph.output(graph.op('Add', [x, graph.weight('W', { dims: [3], data: Float32Array.from([1, 2, 3]) })]), 'Y', 'float32', [3]);
    graph.output(graph.op('Mul', [x, x]), 'Z', 'float32', [3]);
    session = await createModelSession(encodeModel(graph.build()), { executionProvider: 'cpu', logger: captureLogger().logger });
  });
  after(async () => {
    await session.release();
  });

  it('hands back every output, or only those named', async () => {
    const all = await session.run({ X: floats([1, 2, 3]) });
    assert.deepEqual(Object.keys(all).sort(), ['Y', 'Z']);
    const only = await session.run({ X: floats([1, 2, 3]) }, { only: ['Z'] });
    assert.deepEqual(Object.keys(only), ['Z']);
    assert.deepEqual(Array.from(only.Z.data as Float32Array), [1, 4, 9]);
  });

  it('writes an output in place', async () => {
    const y = feedTensor('float32', new Float32Array(3), [3]);
    const outputs = await session.run({ X: floats([1, 1, 1]) }, { into: { Y: y } });
    assert.deepEqual(Array.from(y.data as Float32Array), [2, 3, 4]);
    assert.deepEqual(Array.from(outputs.Z.data as Float32Array), [1, 1, 1]);
  });

  it('refuses an output the model does not have, and one written in place but not fetched', async () => {
    const unknown = await rejectsWithCode(session.run({ X: floats([1, 2, 3]) }, { only: ['Q'] }), 'MODEL_CORRUPT');
    assert.match(unknown.message, /no outputs \[Q\]; it gives \[Y, Z\]/);
    const unfetched = await rejectsWithCode(session.run({ X: floats([1, 2, 3]) }, { only: ['Z'], into: { Y: floats([0, 0, 0]) } }), 'OPTIONS_INVALID');
    assert.match(unfetched.message, /\[Y\]/);
  });
});

describe('feedTensor', () => {
  it('builds a tensor ONNX Runtime accepts, of each element type tunebot feeds', () => {
    const cases = [
      feedTensor('float32', Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]),
      feedTensor('float64', Float64Array.from([0.5]), []),
      feedTensor('int64', BigInt64Array.from([7n, 8n]), [2, 1]),
      feedTensor('bool', Uint8Array.from([1, 0, 1]), [3]),
    ];
    assert.deepEqual(
      cases.map((tensor) => [tensor.type, tensor.dims, tensor.size]),
      [['float32', [2, 3], 6], ['float64', [], 1], ['int64', [2, 1], 2], ['bool', [3], 3]],
    );
  });

  it('refuses data that does not fill its dims, naming the type, the dims and the count', () => {
    assert.throws(
      () => feedTensor('float32', new Float32Array(5), [2, 3]),
      (error: unknown) => error instanceof ModelError && error.code === 'MODEL_CORRUPT' && error.message === 'a float32 tensor of dims [2, 3] cannot hold 5 elements',
    );
    assert.throws(() => feedTensor('int64', new BigInt64Array(0), [2, -1]), /int64 tensor of dims \[2, -1\] cannot hold 0 elements/);
    assert.throws(() => feedTensor('float64', new Float64Array(3), [1.5, 2]), /dims \[1.5, 2\]/);
  });
});
