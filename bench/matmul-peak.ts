import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/model/onnx/graph.js';
import { encodeModel } from '../src/model/onnx/encode.js';
import { SeededRandom } from '../src/model/random.js';

/**
 * The machine's fp32 MatMul rate on ONNX Runtime: a chain of MLP-shaped products,
 * [rows, c] x [c, 4c] then [rows, 4c] x [4c, c], repeated `pairs` times with distinct weights
 * (identical nodes would be merged by the optimizer). Chaining keeps the graph's output
 * small so the figure is compute alone. Returns the best of `runs` after one warm-up run.
 */
export async function measureMatMulPeak(
  shape: { rows: number; channels: number; pairs: number },
  runs: number,
): Promise<{ gflop: number; ms: number; gflopPerS: number }> {
  const { rows, channels, pairs } = shape;
  const inner = 4 * channels;
  const g = new GraphBuilder('matmul_peak');
  const random = new SeededRandom(2);
  // Uniform values scaled to unit output variance: products neither overflow nor sink into
  // denormals, which run far slower and would understate the peak.
  const matrix = (name: string, fanIn: number, fanOut: number) => {
    const scale = Math.sqrt(12 / fanIn);
    const data = Float32Array.from({ length: fanIn * fanOut }, () => (random.next() - 0.5) * scale);
    return g.weight(name, { dims: [fanIn, fanOut], data });
  };
  let x = g.input('x', 'float32', [rows, channels]);
  for (let pair = 0; pair < pairs; pair++) {
    x = g.op('MatMul', [x, matrix(`up.${pair}`, channels, inner)]);
    x = g.op('MatMul', [x, matrix(`down.${pair}`, inner, channels)]);
  }
  g.output(x, 'y', 'float32', [rows, channels]);

  const session = await ort.InferenceSession.create(encodeModel(g.build()), {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: 0,
  });
  const input = Float32Array.from({ length: rows * channels }, () => random.next() - 0.5);
  const feeds = { x: new ort.Tensor('float32', input, [rows, channels]) };
  let best = Infinity;
  for (let run = 0; run < runs + 1; run++) {
    const started = performance.now();
    await session.run(feeds);
    if (run > 0) best = Math.min(best, performance.now() - started);
  }
  await session.release();
  const gflop = (2 * 2 * pairs * rows * channels * inner) / 1e9;
  return { gflop, ms: best, gflopPerS: gflop / (best / 1000) };
}
