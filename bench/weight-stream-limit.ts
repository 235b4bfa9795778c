import * as ort from 'onnxruntime-node';
import { type Gpt2Config, innerSize } from '../src/model/config.js';
import { GraphBuilder } from '../src/model/onnx/graph.js';
import { encodeModel } from '../src/model/onnx/encode.js';
import { SeededRandom } from '../src/model/random.js';

/**
 * The machine's limit for fp32 decode at batch 1: one token must read every weight once, so
 * a graph of one-row MatMuls over matrices shaped like the model's (per layer c_attn,
 * attn.c_proj, c_fc, mlp.c_proj, and the tied head) measures how fast the weights stream.
 * Returns the best time of `runs` passes in milliseconds and the bytes streamed.
 */
export async function measureWeightStreamLimit(config: Gpt2Config, runs: number): Promise<{ ms: number; bytes: number }> {
  const c = config.n_embd;
  const inner = innerSize(config);
  const g = new GraphBuilder('weight_stream');
  const narrow = g.input('narrow', 'float32', [1, c]);
  const wide = g.input('wide', 'float32', [1, inner]);
  const matrices: [string, number, number][] = [];
  for (let layer = 0; layer < config.n_layer; layer++) {
    matrices.push([`h.${layer}.c_attn`, c, 3 * c], [`h.${layer}.attn_proj`, c, c], [`h.${layer}.c_fc`, c, inner], [`h.${layer}.mlp_proj`, inner, c]);
  }
  // Distinct random values: pages of one repeated value can be merged by the host and then
  // stream from cache, which would overstate the limit.
  const random = new SeededRandom(1);
  const randomMatrix = (length: number) => Float32Array.from({ length }, () => random.next() - 0.5);
  let bytes = 0;
  matrices.forEach(([name, rows, columns], i) => {
    const weight = g.weight(name, { dims: [rows, columns], data: randomMatrix(rows * columns) });
    bytes += rows * columns * 4;
    g.output(g.op('MatMul', [rows === c ? narrow : wide, weight]), `out${i}`, 'float32', [1, columns]);
  });
  const head = g.weight('wte', { dims: [config.vocab_size, c], data: randomMatrix(config.vocab_size * c) });
  bytes += config.vocab_size * c * 4;
  g.output(g.op('Gemm', [narrow, head], { attributes: { transB: 1 } }), 'logits', 'float32', [1, config.vocab_size]);

  const session = await ort.InferenceSession.create(encodeModel(g.build()), { graphOptimizationLevel: 'all', executionMode: 'sequential' });
  const feeds = {
    narrow: new ort.Tensor('float32', new Float32Array(c).fill(1), [1, c]),
    wide: new ort.Tensor('float32', new Float32Array(inner).fill(1), [1, inner]),
  };
  let best = Infinity;
  for (let run = 0; run < runs + 1; run++) {
    const started = performance.now();
    await session.run(feeds);
    if (run > 0) best = Math.min(best, performance.now() - started); // the first run warms up
  }
  await session.release();
  return { ms: best, bytes };
}
