import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/log.js';
import { presetConfig } from '../../src/model/config.js';
import { Gpt2Decoder } from '../../src/model/runtime/decoder.js';
import { ModelError } from '../../src/model/errors.js';
import { type MatMulAccuracy, buildGpt2Graph, matMulNBits } from '../../src/model/gpt2-graph.js';
import { LanguageModel } from '../../src/model/runtime/language-model.js';
import { saveModel } from '../../src/model/files/model-dir.js';
import { defaultGenerationConfig } from '../../src/model/files/model-files.js';
import { GraphBuilder } from '../../src/model/onnx/graph.js';
import { encodeModel } from '../../src/model/onnx/encode.js';
import { type QuantizedBits, type QuantizedMatrix, type WeightType, quantizeMatrix } from '../../src/model/quantize.js';
import { SeededRandom } from '../../src/model/random.js';
import { createModelSession } from '../../src/model/runtime/session.js';
import { perturbedWeights } from '../helpers/perturbed-weights.js';

/**
 * Block quantization for MatMulNBits: the packing against the operator's spec (a float64
 * dequantize-and-multiply written here from the spec alone), the round-trip error bound, and
 * the tiny model's runtime graph with quantized weights against its float32 self.
 */
const BITS: readonly QuantizedBits[] = [8, 4];

function randomMatrix(random: SeededRandom, length: number, std: number): Float32Array {
  return Float32Array.from({ length }, () => std * random.normal());
}

/** The `index`-th `bits`-wide code of a row of bytes, packed low bits first (the spec's layout). */
function unpack(bytes: Uint8Array, offset: number, index: number, bits: number): number {
  const bit = index * bits;
  return (bytes[offset + (bit >> 3)] >> (bit & 7)) & ((1 << bits) - 1);
}

/** The spec's dequantization, (code - zero_point) * scale, in plain loops: W as [K, N] in float64. */
function dequantize(q: QuantizedMatrix): Float64Array {
  const blocks = Math.ceil(q.k / q.blockSize);
  const blobSize = (q.blockSize * q.bits) / 8;
  const zeroPointRow = Math.ceil((blocks * q.bits) / 8);
  const w = new Float64Array(q.k * q.n);
  for (let n = 0; n < q.n; n++) {
    for (let k = 0; k < q.k; k++) {
      const block = Math.floor(k / q.blockSize);
      const code = unpack(q.data, (n * blocks + block) * blobSize, k % q.blockSize, q.bits);
      const zeroPoint = unpack(q.zeroPoints, n * zeroPointRow, block, q.bits);
      w[k * q.n + n] = (code - zeroPoint) * q.scales[n * blocks + block];
    }
  }
  return w;
}

/** y = a @ w + bias in float64; a is [M, K], w [K, N]. */
function referenceMatMul(a: Float32Array, w: Float64Array, bias: Float32Array, m: number, k: number, n: number): Float64Array {
  const y = new Float64Array(m * n);
  for (let row = 0; row < m; row++) {
    for (let column = 0; column < n; column++) {
      let sum = bias[column];
      for (let i = 0; i < k; i++) sum += a[row * k + i] * w[i * n + column];
      y[row * n + column] = sum;
    }
  }
  return y;
}

async function runMatMulNBits(q: QuantizedMatrix, a: Float32Array, m: number, bias: Float32Array, accuracy: MatMulAccuracy): Promise<Float32Array> {
  const g = new GraphBuilder('matmul_nbits');
  const x = g.input('a', 'float32', [m, q.k]);
  const y = matMulNBits(g, x, 'w', q, g.namedConstant('bias', { type: 'float32', dims: [q.n], data: bias }), accuracy);
  g.output(y, 'y', 'float32', [m, q.n]);
  const session = await ort.InferenceSession.create(encodeModel(g.build(), { extraOpsets: { 'com.microsoft': 1 } }));
  try {
    return (await session.run({ a: new ort.Tensor('float32', a, [m, q.k]) })).y.data as Float32Array;
  } finally {
    await session.release();
  }
}

function isOptionsInvalid(message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof ModelError, `expected a ModelError, got ${String(error)}`);
    assert.equal(error.code, 'OPTIONS_INVALID');
    assert.match(error.message, message);
    return true;
  };
}

function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < actual.length; i++) max = Math.max(max, Math.abs(actual[i] - expected[i]));
  return max;
}

describe('quantizeMatrix and ONNX Runtime MatMulNBits', () => {
  const [K, N, M] = [64, 48, 3];

  for (const bits of BITS) {
    it(`${bits} bits: ORT's MatMulNBits (fp32 compute) equals the spec's dequantize-and-multiply in float64`, async () => {
      const random = new SeededRandom(bits);
      const q = quantizeMatrix({ dims: [K, N], data: randomMatrix(random, K * N, 0.02) }, 'inputs-outputs', bits);
      const a = randomMatrix(random, M * K, 1);
      const bias = randomMatrix(random, N, 0.1);
      const expected = referenceMatMul(a, dequantize(q), bias, M, K, N);
      const actual = await runMatMulNBits(q, a, M, bias, 0);
      // float32 sums of 64 products of size ~0.02: rounding stays near 1e-7; a packing mistake is ~1e-2.
      const diff = maxAbsDiff(actual, expected);
      assert.ok(diff < 1e-5, `max |diff| ${diff}`);
    });

    it(`${bits} bits: at accuracy_level 4 (A rounded to int8 per block) the error stays within A's rounding bound`, async () => {
      const random = new SeededRandom(10 + bits);
      const q = quantizeMatrix({ dims: [K, N], data: randomMatrix(random, K * N, 0.02) }, 'inputs-outputs', bits);
      const a = randomMatrix(random, M * K, 1);
      const bias = new Float32Array(N);
      const w = dequantize(q);
      const expected = referenceMatMul(a, w, bias, M, K, N);
      const actual = await runMatMulNBits(q, a, M, bias, 4);
      for (let row = 0; row < M; row++) {
        for (let column = 0; column < N; column++) {
          // Each a in a block moves by at most max|a in block| / 254 (symmetric int8, round to nearest).
          let bound = 1e-5;
          for (let first = 0; first < K; first += q.blockSize) {
            let largest = 0;
            let weightSum = 0;
            for (let i = first; i < first + q.blockSize; i++) {
              largest = Math.max(largest, Math.abs(a[row * K + i]));
              weightSum += Math.abs(w[i * N + column]);
            }
            bound += (largest / 254) * weightSum;
          }
          const diff = Math.abs(actual[row * N + column] - expected[row * N + column]);
          assert.ok(diff <= bound, `[${row}, ${column}]: |diff| ${diff} > bound ${bound}`);
        }
      }
    });

    it(`${bits} bits: every weight round-trips within half its block's step, a partial last block included`, () => {
      const random = new SeededRandom(20 + bits);
      const k = 72; // two whole blocks of 32 and one of 8
      const n = 5;
      const data = randomMatrix(random, k * n, 0.05);
      data.fill(0, 0, 32 * n); // block 0 of every column all zero: stays exact
      const q = quantizeMatrix({ dims: [k, n], data }, 'inputs-outputs', bits);
      assert.deepEqual([q.k, q.n, q.data.length, q.scales.length], [k, n, n * 3 * ((32 * bits) / 8), n * 3]);
      const w = dequantize(q);
      for (let i = 0; i < k; i++) {
        for (let column = 0; column < n; column++) {
          const scale = q.scales[column * 3 + Math.floor(i / 32)];
          const error = Math.abs(w[i * n + column] - data[i * n + column]);
          assert.ok(error <= (scale / 2) * (1 + 1e-6), `[${i}, ${column}]: error ${error} > step / 2 = ${scale / 2}`);
          if (i < 32) assert.equal(w[i * n + column], 0);
        }
      }
      // The step is the block's range over 2^bits - 1: 8 bits resolve ~16x finer than 4.
      const range = 0.05 * 8;
      assert.ok(Math.max(...q.scales) < range / (2 ** bits - 1), `largest step ${Math.max(...q.scales)}`);
    });

    it(`${bits} bits: an [N, K] matrix (the head's wte) quantizes as its [K, N] transpose does`, () => {
      const random = new SeededRandom(30 + bits);
      const [k, n] = [64, 6];
      const outputsInputs = randomMatrix(random, n * k, 0.02);
      const inputsOutputs = Float32Array.from({ length: k * n }, (_, i) => outputsInputs[(i % n) * k + Math.floor(i / n)]);
      assert.deepEqual(
        quantizeMatrix({ dims: [n, k], data: outputsInputs }, 'outputs-inputs', bits),
        quantizeMatrix({ dims: [k, n], data: inputsOutputs }, 'inputs-outputs', bits),
      );
    });
  }

  it('refuses what MatMulNBits cannot take, with OPTIONS_INVALID', () => {
    const matrix = { dims: [64, 4], data: new Float32Array(256) };
    assert.throws(() => quantizeMatrix(matrix, 'inputs-outputs', 3 as QuantizedBits), isOptionsInvalid(/4 or 8 bits; got 3/));
    assert.throws(() => quantizeMatrix(matrix, 'inputs-outputs', 8, 24), isOptionsInvalid(/power of two >= 16.*got 24/));
    assert.throws(() => quantizeMatrix(matrix, 'inputs-outputs', 8, 8), isOptionsInvalid(/got 8/));
    assert.throws(() => quantizeMatrix({ dims: [256], data: new Float32Array(256) }, 'inputs-outputs', 8), isOptionsInvalid(/only matrices/));
  });
});

describe('the tiny model with quantized weights', () => {
  const config = presetConfig('tiny');
  const weights = perturbedWeights(config, 77);
  const prompts = ['Question: how do I reset my password?\nAnswer:', 'The bot answers from the FAQ', 'Hello there'];
  let root: string;
  let dir: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-quantize-'));
    dir = join(root, 'tiny');
    await saveModel(dir, { config, weights, generationConfig: defaultGenerationConfig(config) });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function promptLogits(weightType: WeightType): Promise<Float32Array[]> {
    const options = { weights: weightType };
    const session = await createModelSession(encodeModel(buildGpt2Graph(config, weights, 'runtime', options)), {
      executionProvider: 'cpu',
      logger: silentLogger,
    });
    try {
      const decoder = new Gpt2Decoder(session, config);
      const random = new SeededRandom(5);
      const logits: Float32Array[] = [];
      for (const length of [1, 9, 40]) {
        const ids = Array.from({ length }, () => Math.floor(random.next() * config.vocab_size));
        logits.push(Float32Array.from((await decoder.prefill(ids)).logits));
      }
      return logits;
    } finally {
      await session.release();
    }
  }

  function spread(values: Float32Array): number {
    const mean = values.reduce((sum, v) => sum + v, 0) / values.length;
    return Math.sqrt(values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / values.length);
  }

  it('int8 logits: RMS error under 1.5% of the logits\' spread, max under 6%; int4 RMS under 15%', async () => {
    const reference = await promptLogits('float32');
    // Rounding to a step of range / (2^bits - 1) adds noise of step / sqrt(12) to each weight: for
    // a block of 32 normal weights (range ~4.2 std) 0.5% of the weights' std at 8 bits, 8% at 4
    // bits; accuracy_level 4 rounds A to int8 per block, ~0.5% more. A logit is a long dot
    // product, so it carries about that relative noise: measured RMS 0.75% (int8) and 8.1% (int4)
    // of the logits' spread on four seeds; the max over 50257 logits is ~4.5x the RMS (int8 up
    // to 3.8%). The bounds leave room for other seeds, not for a packing bug (of the order of the
    // spread itself).
    for (const [type, rmsLimit, maxLimit] of [['int8', 0.015, 0.06], ['int4', 0.15, Infinity]] as const) {
      const quantized = await promptLogits(type);
      quantized.forEach((logits, i) => {
        const scale = spread(reference[i]);
        const rms = Math.sqrt(logits.reduce((sum, v, j) => sum + (v - reference[i][j]) ** 2, 0) / logits.length) / scale;
        const max = maxAbsDiff(logits, reference[i]) / scale;
        assert.ok(rms < rmsLimit && max < maxLimit, `${type}, prompt ${i}: RMS error ${rms}, max ${max} of the spread`);
      });
    }
  });

  async function greedyTexts(weightType: WeightType): Promise<string[]> {
    const model = await LanguageModel.load(dir, { executionProvider: 'cpu', intraOpThreads: 1, logLevel: 'silent', weights: weightType });
    try {
      const texts: string[] = [];
      for (const prompt of prompts) texts.push((await model.complete(prompt, { greedy: true, maxNewTokens: 16 })).text);
      return texts;
    } finally {
      await model.close();
    }
  }

  it('int8 generates the same greedy text as float32 through LanguageModel; int4 is reported', async (t) => {
    const reference = await greedyTexts('float32');
    assert.deepEqual(await greedyTexts('int8'), reference);
    const int4 = await greedyTexts('int4');
    t.diagnostic(`int4 greedy text equals float32's on ${int4.filter((text, i) => text === reference[i]).length} of ${prompts.length} prompts`);
  });

  it('refuses bad weight settings with OPTIONS_INVALID, before any worker starts', async () => {
    assert.throws(() => buildGpt2Graph(config, weights, 'export', { weights: 'int8' }), isOptionsInvalid(/only the runtime graph/));
    assert.throws(() => buildGpt2Graph(config, weights, 'runtime', { weights: 'int3' as WeightType }), isOptionsInvalid(/float32, int8, int4; got "int3"/));
    await assert.rejects(LanguageModel.load(dir, { weights: 'fp16' as WeightType }), isOptionsInvalid(/must be one of float32, int8, int4; got "fp16"/));
  });

  it('config model.weights: float32 by default, TUNEBOT_MODEL_WEIGHTS sets it, other values are refused', () => {
    assert.equal(loadConfig({}).model.weights, 'float32');
    assert.equal(loadConfig({ TUNEBOT_MODEL_WEIGHTS: 'int4' }).model.weights, 'int4');
    assert.throws(() => loadConfig({ TUNEBOT_MODEL_WEIGHTS: 'int2' }), /model\.weights \(TUNEBOT_MODEL_WEIGHTS\)/);
  });
});
