import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { silentLogger } from '../../src/log.js';
import { readSafetensors } from '../../src/model/files/safetensors.js';
import { type ModelSession, createModelSession } from '../../src/model/runtime/session.js';
import { type TinyBert, writeTinyBert } from '../helpers/tiny-bert/tiny-bert-folder.js';
import { erf, referenceBertForward } from './bert-reference.js';

// float32 graph against float64 loops over two post-LN layers of width 32: measured 3.4e-6;
// values are O(1) after each layer norm.
const HIDDEN_TOLERANCE = 2e-5;

function int64(rows: readonly (readonly number[])[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
}

describe('erf in float64', () => {
  // The values are C's erf (glibc), to 16 digits; the series near 3 cancels away a few digits.
  it('matches tabulated values on both sides of the series / continued-fraction switch', () => {
    const table: [number, number][] = [
      [0, 0],
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [2.999, 0.9999777698314002],
      [3, 0.9999779095030014],
      [3.5, 0.9999992569016276],
      [5, 0.9999999999984626],
    ];
    for (const [x, expected] of table) {
      assert.ok(Math.abs(erf(x) - expected) < 1e-13, `erf(${x}) = ${erf(x)}, expected ${expected}`);
      assert.ok(Math.abs(erf(-x) + expected) < 1e-13, `erf(-${x})`);
    }
  });
});

describe('the tiny BERT graph against a float64 BertModel forward', () => {
  let root: string;
  let bert: TinyBert;
  let session: ModelSession;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-bert-reference-'));
    // A larger init than BERT's 0.02, so attention is far from uniform and the MLP far from linear.
    bert = await writeTinyBert(join(root, 'bert'), { seed: 3, shape: { initializer_range: 0.3 } });
    session = await createModelSession(join(bert.dir, 'onnx', 'model.onnx'), { executionProvider: 'cpu', logger: silentLogger });
  });
  after(async () => {
    await session?.release();
    await rm(root, { recursive: true, force: true });
  });

  it('has the feature-extraction inputs and output', () => {
    assert.deepEqual([...session.inputNames].sort(), ['attention_mask', 'input_ids', 'token_type_ids']);
    assert.deepEqual(session.outputNames, ['last_hidden_state']);
  });

  it('gives the reference last_hidden_state at every real position of a padded batch with two token types', async () => {
    // The weights as model.safetensors holds them, not the builder's in-memory copy.
    const { tensors } = await readSafetensors(join(bert.dir, 'model.safetensors'));
    const ids = [
      [2, 60, 61, 62, 63, 64, 65, 3],
      [2, 100, 140, 3, 0, 0, 0, 0],
      [2, 70, 71, 3, 80, 81, 3, 0],
    ];
    const types = [
      [0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 1, 1, 1, 0],
    ];
    const masks = ids.map((row) => row.map((id, t) => (t === 0 || id !== 0 ? 1 : 0)));
    const { last_hidden_state: output } = await session.run({ input_ids: int64(ids), attention_mask: int64(masks), token_type_ids: int64(types) });
    const C = bert.config.hidden_size;
    assert.deepEqual(output.dims, [3, 8, C]);
    const data = output.data as Float32Array;
    let worst = 0;
    for (let b = 0; b < ids.length; b++) {
      const expected = referenceBertForward(bert.config, tensors, ids[b], types[b], masks[b]);
      for (let t = 0; t < ids[b].length; t++) {
        if (masks[b][t] === 0) continue;
        for (let c = 0; c < C; c++) worst = Math.max(worst, Math.abs(data[(b * 8 + t) * C + c] - expected[t][c]));
      }
    }
    assert.ok(worst < HIDDEN_TOLERANCE, `max |graph - reference| = ${worst}`);
  });

  it('gives a padded row the same real positions as the row run alone', async () => {
    const alone = await session.run({ input_ids: int64([[2, 100, 140, 3]]), attention_mask: int64([[1, 1, 1, 1]]), token_type_ids: int64([[0, 0, 0, 0]]) });
    const padded = await session.run({
      input_ids: int64([[2, 100, 140, 3, 0, 0]]),
      attention_mask: int64([[1, 1, 1, 1, 0, 0]]),
      token_type_ids: int64([[0, 0, 0, 0, 0, 0]]),
    });
    const a = alone.last_hidden_state.data as Float32Array;
    const p = (padded.last_hidden_state.data as Float32Array).subarray(0, a.length);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - p[i]));
    assert.ok(worst < 1e-5, `padding changed the real positions by ${worst}`);
  });
});
