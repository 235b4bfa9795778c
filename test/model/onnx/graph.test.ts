import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { encodeModel } from '../../../src/model/onnx/encode.js';
import { GraphBuilder } from '../../../src/model/onnx/graph.js';

async function run(g: GraphBuilder, x: number[]): Promise<Record<string, number[]>> {
  const session = await ort.InferenceSession.create(encodeModel(g.build()));
  try {
    const outputs = await session.run({ x: new ort.Tensor('float32', Float32Array.from(x), [x.length]) });
    return Object.fromEntries(Object.entries(outputs).map(([name, tensor]) => [name, Array.from(tensor.data as Float32Array)]));
  } finally {
    await session.release();
  }
}

describe('GraphBuilder outputs', () => {
  it("renames a node's value after the output it becomes, in the nodes that read it before and after", async () => {
    const g = new GraphBuilder('renamed');
    const x = g.input('x', 'float32', [2]);
    const doubled = g.op('Mul', [x, g.constFloat(2)]);
    const before = g.op('Add', [doubled, g.constFloat(1)]);
    g.output(doubled, 'doubled', 'float32', [2]);
    const after = g.op('Neg', [doubled]); // through the handle taken before the rename
    g.output(before, 'before', 'float32', [2]);
    g.output(after, 'after', 'float32', [2]);
    const graph = g.build();
    assert.deepEqual(graph.nodes.filter((node) => node.opType === 'Identity'), []);
    assert.deepEqual(graph.nodes.find((node) => node.opType === 'Mul')?.outputs, ['doubled']);
    assert.deepEqual(graph.nodes.filter((node) => node.inputs.includes(doubled.name)), []);
    assert.deepEqual(await run(g, [1, 3]), { doubled: [2, 6], before: [3, 7], after: [-2, -6] });
  });

  it('copies with an Identity what cannot be renamed: a graph input, a value that is already an output', async () => {
    const g = new GraphBuilder('copied');
    const x = g.input('x', 'float32', [2]);
    const squared = g.op('Mul', [x, x]);
    g.output(squared, 'squared', 'float32', [2]);
    g.output(squared, 'again', 'float32', [2]);
    g.output(x, 'echo', 'float32', [2]);
    const identities = g.build().nodes.filter((node) => node.opType === 'Identity');
    assert.deepEqual(identities.map((node) => [node.inputs[0], node.outputs[0]]), [['squared', 'again'], ['x', 'echo']]);
    assert.deepEqual(await run(g, [2, -3]), { squared: [4, 9], again: [4, 9], echo: [2, -3] });
  });

  it('refuses an output name already taken', () => {
    const g = new GraphBuilder('taken');
    const x = g.input('x', 'float32', [2]);
    assert.throws(() => g.output(g.op('Neg', [x]), 'x', 'float32', [2]), /the value name "x" is used twice/);
  });
});
