import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../../src/log.js';
import { makeConfig } from '../../../src/model/config.js';
import { encodeModel } from '../../../src/model/onnx/encode.js';
import { type Graph, GraphBuilder, type Value } from '../../../src/model/onnx/graph.js';
import { type InferredDim, ShapeInference } from '../../../src/model/onnx/shape-inference.js';
import { type SessionTensor, createModelSession, feedTensor } from '../../../src/model/runtime/session.js';
import { elementCount } from '../../../src/model/tensor.js';
import { buildGradientGraph } from '../../../src/model/training/train-graph.js';

/**
 * Static shape inference against ONNX Runtime's shapes at run time: every value of the GPT-2
 * gradient graphs (forward, loss and the whole backward pass, full and LoRA) is inferred, then
 * the same graph outputs Shape() of each value and runs on a batch of 3 x 5. A known dim must
 * equal the run's (a symbolic one, the size fed for that symbol); an unknown one is skipped,
 * and how many were known is asserted so that coverage cannot quietly fall to nothing.
 */
const SMALL = makeConfig({ n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 13, initializer_range: 0.4 });
const SYMBOLS: Readonly<Record<string, number>> = { batch_size: 3, sequence_length: 5, loss_tokens: 4 };

/** The graph's inputs, constants and nodes written again into a builder (values keyed by their original names). */
function replay(graph: Graph): { g: GraphBuilder; values: Map<string, Value> } {
  const g = new GraphBuilder(graph.name);
  const values = new Map<string, Value>();
  for (const input of graph.inputs) values.set(input.name, g.input(input.name, input.type, input.dims));
  for (const [name, tensor] of graph.initializers) values.set(name, g.namedConstant(name, tensor));
  for (const node of graph.nodes) {
    const inputs = node.inputs.map((name) => (name === '' ? null : (values.get(name) as Value)));
    const outputs = g.opMulti(node.opType, inputs, node.outputs.length, { attributes: { ...node.attributes }, domain: node.domain });
    node.outputs.forEach((name, i) => values.set(name, outputs[i]));
  }
  return { g, values };
}

function feedsFor(graph: Graph): Record<string, SessionTensor> {
  const feeds: Record<string, SessionTensor> = {};
  for (const input of graph.inputs) {
    const dims = input.dims.map((dim) => (typeof dim === 'number' ? dim : SYMBOLS[dim]));
    const size = elementCount(dims);
    // 1 and 2: ids, targets and (row, column) pairs inside the batch alike
    if (input.type === 'int64') feeds[input.name] = feedTensor('int64', BigInt64Array.from({ length: size }, (_, i) => BigInt(1 + (i % 2))), dims);
    else feeds[input.name] = feedTensor('float32', Float32Array.from({ length: size }, (_, i) => Math.sin(i)), dims);
  }
  return feeds;
}

interface Comparison {
  readonly values: number;
  readonly withRank: number;
  readonly dimsKnown: number;
  readonly dimsTotal: number;
  readonly mismatches: readonly string[];
}

async function compareWithRuntime(graph: Graph): Promise<Comparison> {
  const { g, values } = replay(graph);
  const shapes = new ShapeInference(g);
  const produced = graph.nodes.flatMap((node) => node.outputs);
  const inferred = new Map<string, readonly InferredDim[]>();
  for (const name of produced) {
    const dims = shapes.dims(values.get(name) as Value);
    if (dims) inferred.set(name, dims);
  }
  const outputNames = new Map<string, string>();
  [...inferred.keys()].forEach((name, i) => {
    outputNames.set(name, `shape${i}`);
    g.output(g.op('Shape', [values.get(name) as Value]), `shape${i}`, 'int64', ['rank']);
  });
  const session = await createModelSession(encodeModel(g.build()), { executionProvider: 'cpu', logger: silentLogger });
  try {
    const results = await session.run(feedsFor(graph));
    const mismatches: string[] = [];
    let dimsKnown = 0;
    let dimsTotal = 0;
    for (const [name, dims] of inferred) {
      const actual = Array.from(results[outputNames.get(name) as string].data as BigInt64Array, Number);
      const expected = dims.map((dim) => (typeof dim === 'string' ? SYMBOLS[dim] : dim));
      dimsTotal += dims.length;
      dimsKnown += expected.filter((dim) => dim !== null).length;
      if (actual.length !== expected.length || expected.some((dim, i) => dim !== null && dim !== actual[i])) {
        mismatches.push(`${name}: inferred [${dims.map((dim) => dim ?? '?')}], ran as [${actual}]`);
      }
    }
    return { values: produced.length, withRank: inferred.size, dimsKnown, dimsTotal, mismatches };
  } finally {
    await session.release();
  }
}

describe('ShapeInference against ONNX Runtime', () => {
  for (const [label, build] of [
    ['the full fine-tuning gradient graph', () => buildGradientGraph(SMALL)],
    ['the LoRA gradient graph', () => buildGradientGraph(SMALL, { lora: { rank: 2, alpha: 4 } })],
  ] as const) {
    it(`${label}: every inferred dim is the one it runs with`, async () => {
      const { graph } = build();
      const result = await compareWithRuntime(graph);
      assert.deepEqual(result.mismatches.slice(0, 10), [], `${result.mismatches.length} values differ`);
      // When written: every value had a rank; 1,782 of 2,149 dims known (full), 1,982 of 2,370 (LoRA).
      // The rest are rows of batch x sequence and the axes that broadcast gradients are summed over.
      assert.equal(result.withRank, result.values, `a rank for ${result.withRank} of ${result.values} values`);
      assert.ok(result.dimsKnown / result.dimsTotal > 0.8, `${result.dimsKnown} of ${result.dimsTotal} dims known`);
    });
  }
});

describe('ShapeInference: what stays unknown', () => {
  it('a shape that only the run decides leaves the rank and no dims; symbols pass through Shape, Gather and Concat', () => {
    const g = new GraphBuilder('unknowns');
    const x = g.input('x', 'float32', ['batch', 4]);
    const counts = g.input('counts', 'int64', [2]);
    const reshaped = g.op('Reshape', [x, counts]);
    const batch = g.op('Gather', [g.op('Shape', [x]), g.constInt64([0])], { attributes: { axis: 0 } });
    const rebuilt = g.op('Reshape', [reshaped, g.op('Concat', [batch, g.constInt64([2, 2])], { attributes: { axis: 0 } })]);
    const nonZero = g.op('NonZero', [x]);
    const shapes = new ShapeInference(g);
    assert.deepEqual(shapes.dims(reshaped), [null, null]);
    assert.deepEqual(shapes.dims(rebuilt), ['batch', 2, 2]);
    assert.deepEqual(shapes.dims(nonZero), [2, null]);
    const positions = g.input('positions', 'int64', ['picked', 2]);
    assert.deepEqual(shapes.dims(g.op('GatherND', [g.input('y', 'float32', ['batch', 'sequence', 4]), positions])), ['picked', 4]);
    assert.equal(shapes.dims(g.op('GatherND', [x, reshaped])), undefined, 'an index depth that only the run decides');
    assert.equal(shapes.dims(g.op('MatMulNBits', [x], { domain: 'com.microsoft' })), undefined);
  });

  it('Shape with start and end gives that slice of the dims, negative ones counted from the end', () => {
    const g = new GraphBuilder('slices');
    const x = g.input('x', 'float32', ['batch', 'sequence', 4]);
    const shapes = new ShapeInference(g);
    // a scalar expanded to the slice has the slice for its dims
    const slice = (attributes: Record<string, number>) => shapes.dims(g.op('Expand', [g.constFloat(0), g.op('Shape', [x], { attributes })]));
    assert.deepEqual(slice({ start: 1 }), ['sequence', 4]);
    assert.deepEqual(slice({ start: 0, end: 1 }), ['batch']);
    assert.deepEqual(slice({ start: -1 }), [4]);
    assert.deepEqual(slice({ start: 1, end: -1 }), ['sequence']);
    assert.deepEqual(slice({ start: 2, end: 1 }), []);
    assert.deepEqual(slice({ start: -9, end: 9 }), ['batch', 'sequence', 4]);
  });
});
