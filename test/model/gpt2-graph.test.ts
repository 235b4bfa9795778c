import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { silentLogger } from '../../src/log.js';
import { type Gpt2Config, headSize, makeConfig, presetConfig } from '../../src/model/config.js';
import { type Candidates, Gpt2Decoder, type RepetitionPenalty, SeenTokens } from '../../src/model/runtime/decoder.js';
import type { BatchKvCache } from '../../src/model/runtime/kv-cache.js';
import { buildGpt2Graph } from '../../src/model/gpt2-graph.js';
import { encodeModel } from '../../src/model/onnx/encode.js';
import { SeededRandom } from '../../src/model/random.js';
import { type ModelSession, createModelSession } from '../../src/model/runtime/session.js';
import {
  type ReferenceCache,
  type ReferenceModel,
  emptyReferenceCache,
  positionIdsFromMask,
  referenceForward,
  referenceForwardWithCache,
  referenceModel,
} from '../reference/gpt2-reference.js';
import { candidatesBySorting, penalizedReference } from '../helpers/candidates.js';
import { perturbedWeights } from '../helpers/perturbed-weights.js';

/**
 * The ONNX graphs (export and runtime) against the float64 reference, on the tiny preset and
 * on a 2-layer 768-wide model, both with GPT-2's real vocabulary.
 */
const { onnx } = onnxProto;
const TOLERANCE = 1e-4;


function randomTokens(random: SeededRandom, count: number, vocab: number): number[] {
  return Array.from({ length: count }, () => Math.floor(random.next() * vocab));
}

function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let max = 0;
  for (let i = 0; i < actual.length; i++) max = Math.max(max, Math.abs(actual[i] - expected[i]));
  return max;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  const diff = maxAbsDiff(actual, expected);
  assert.ok(diff < TOLERANCE, `${label}: max |diff| ${diff} >= ${TOLERANCE}`);
}

/** Rows right-aligned with the pad token (eos, as HF pads GPT-2) in front; mask 0 on padding. */
interface PaddedBatch {
  readonly padding: number[];
  readonly ids: number[][];
  readonly mask: number[][];
  readonly positions: number[][];
}

function leftPadded(rows: number[][], padId: number): PaddedBatch {
  const width = Math.max(...rows.map((row) => row.length));
  const padding = rows.map((row) => width - row.length);
  const mask = rows.map((row, b) => [...new Array<number>(padding[b]).fill(0), ...row.map(() => 1)]);
  return {
    padding,
    ids: rows.map((row, b) => [...new Array<number>(padding[b]).fill(padId), ...row]),
    mask,
    positions: positionIdsFromMask(mask),
  };
}

const openSession = (bytes: Uint8Array) => createModelSession(bytes, { executionProvider: 'cpu', logger: silentLogger });

const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);

function emptyPast(config: Gpt2Config, batch: number): Record<string, ort.Tensor> {
  const past: Record<string, ort.Tensor> = {};
  for (let layer = 0; layer < config.n_layer; layer++) {
    for (const which of ['key', 'value']) {
      past[`past_key_values.${layer}.${which}`] = new ort.Tensor('float32', new Float32Array(0), [batch, config.n_head, 0, headSize(config)]);
    }
  }
  return past;
}

/** Runs the export graph on columns [from, to) after `past` (the columns before `from`). */
async function runExport(
  session: ModelSession,
  batch: PaddedBatch,
  from: number,
  to: number,
  past: Record<string, ort.Tensor>,
  positions = batch.positions,
): Promise<{ logits: ort.Tensor; present: Record<string, ort.Tensor> }> {
  const columns = (rows: number[][], start: number) => rows.map((row) => row.slice(start, to));
  const outputs = await session.run({
    input_ids: int64(columns(batch.ids, from)),
    attention_mask: int64(columns(batch.mask, 0)),
    position_ids: int64(columns(positions, from)),
    ...past,
  });
  const present: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(outputs)) {
    if (name.startsWith('present.')) present[name.replace('present.', 'past_key_values.')] = tensor;
  }
  return { logits: outputs.logits, present };
}

/** Compares the export graph's logits for columns [from, to) with the reference at every real (non-padding) position. */
function assertExportLogits(logits: ort.Tensor, reference: Float64Array[][], batch: PaddedBatch, from: number, to: number, label: string): void {
  const [rows, steps, vocab] = logits.dims;
  assert.deepEqual([rows, steps], [batch.ids.length, to - from]);
  const data = logits.data as Float32Array;
  for (let b = 0; b < rows; b++) {
    for (let t = 0; t < steps; t++) {
      const column = from + t;
      if (batch.mask[b][column] === 0) continue;
      const offset = (b * steps + t) * vocab;
      assertClose(data.subarray(offset, offset + vocab), reference[b][column], `${label}, row ${b}, column ${column}`);
    }
  }
}

/** present.N.key/value [B, H, S, D] against the reference's per-position (C) rows, on real positions. */
function assertPresentMatches(config: Gpt2Config, present: Record<string, ort.Tensor>, cache: ReferenceCache, batch: PaddedBatch): void {
  const H = config.n_head;
  const D = headSize(config);
  for (let layer = 0; layer < config.n_layer; layer++) {
    for (const which of ['key', 'value'] as const) {
      const tensor = present[`past_key_values.${layer}.${which}`];
      const width = batch.ids[0].length;
      assert.deepEqual(tensor.dims, [batch.ids.length, H, width, D]);
      const data = tensor.data as Float32Array;
      const expectedRows = which === 'key' ? cache.keys[layer] : cache.values[layer];
      batch.mask.forEach((maskRow, b) =>
        maskRow.forEach((real, s) => {
          if (real === 0) return;
          const actual = Float32Array.from({ length: H * D }, (_, i) => data[((b * H + Math.floor(i / D)) * width + s) * D + (i % D)]);
          assertClose(actual, expectedRows[b][s], `present.${layer}.${which} row ${b}, position ${s}`);
        }),
      );
    }
  }
}

/** One model's sessions and its reference run on a left-padded batch of two. */
interface Fixture {
  config: Gpt2Config;
  model: ReferenceModel;
  /** The export graph's ONNX file. */
  exportBytes: Uint8Array;
  exportSession: ModelSession;
  runtimeSession: ModelSession;
  batch: PaddedBatch;
  /** referenceForward on batch: logits[b][column] (V). */
  reference: Float64Array[][];
  referenceCache: ReferenceCache;
}

/**
 * The checks every model gets: rowLengths are the real lengths of the batch's two rows (the
 * second the longer, so the first is padded), chunks split the columns for the cached run,
 * and moreTests adds the model's own cases.
 */
function describeModel(
  name: string,
  config: Gpt2Config,
  seed: number,
  rowLengths: [number, number],
  chunks: number[],
  moreTests: (fixture: () => Fixture) => void,
): void {
  describe(name, () => {
    let fixture: Fixture;
    before(async () => {
      const weights = perturbedWeights(config, seed);
      const random = new SeededRandom(seed + 2);
      const batch = leftPadded(
        rowLengths.map((length) => randomTokens(random, length, config.vocab_size)),
        config.eos_token_id,
      );
      const model = referenceModel(config, weights);
      const referenceCache = emptyReferenceCache(model, batch.ids.length);
      const reference = referenceForwardWithCache(model, referenceCache, batch.ids, batch.mask);
      const exportBytes = encodeModel(buildGpt2Graph(config, weights, 'export'));
      fixture = {
        config,
        model,
        exportBytes,
        exportSession: await openSession(exportBytes),
        runtimeSession: await openSession(encodeModel(buildGpt2Graph(config, weights, 'runtime'))),
        batch,
        reference,
        referenceCache,
      };
    });
    after(async () => {
      await fixture?.exportSession.release();
      await fixture?.runtimeSession.release();
    });

    it('the reference logits are far from trivial (so 1e-4 means something)', () => {
      const logits = fixture.reference[1][0];
      const mean = logits.reduce((sum, v) => sum + v, 0) / logits.length;
      const spread = Math.sqrt(logits.reduce((sum, v) => sum + (v - mean) ** 2, 0) / logits.length);
      assert.ok(spread > 0.1, `logit standard deviation ${spread}`);
      assert.ok(maxAbsDiff(fixture.reference[1][1], fixture.reference[1][2]) > 0.1, 'positions differ');
    });

    it('export graph, no past: a left-padded batch of two matches the reference', async () => {
      const { exportSession, batch, reference, config } = fixture;
      const width = batch.ids[0].length;
      const { logits, present } = await runExport(exportSession, batch, 0, width, emptyPast(config, 2));
      assert.deepEqual(logits.dims, [2, width, config.vocab_size]);
      assertExportLogits(logits, reference, batch, 0, width, 'full forward');
      assertPresentMatches(config, present, fixture.referenceCache, batch);
    });

    it(`export graph with the cache: chunks ${JSON.stringify(chunks)} fed present -> past`, async () => {
      const { exportSession, batch, reference, config } = fixture;
      let past = emptyPast(config, 2);
      let from = 0;
      for (const length of chunks) {
        const to = from + length;
        const { logits, present } = await runExport(exportSession, batch, from, to, past);
        assertExportLogits(logits, reference, batch, from, to, `chunk [${from}, ${to})`);
        assert.deepEqual(present['past_key_values.0.key'].dims, [2, config.n_head, to, headSize(config)]);
        past = present;
        from = to;
      }
      assert.equal(from, batch.ids[0].length, 'the chunks cover the batch');
      assertPresentMatches(config, past, fixture.referenceCache, batch);
    });

    moreTests(() => fixture);
  });
}

/** What a sequence was fed and the logits the decoder returned at each of its positions. */
class DecodedSequence {
  fed = 0;
  readonly logits = new Map<number, Float32Array>();
  constructor(readonly tokens: readonly number[]) {}

  record(logits: Float32Array): void {
    this.logits.set(this.fed - 1, Float32Array.from(logits));
  }

  assertMatches(expected: readonly Float64Array[], label: string): void {
    assert.ok(this.logits.size > 0);
    for (const [position, logits] of this.logits) assertClose(logits, expected[position], `${label}, position ${position}`);
  }
}

/** The runtime graph's candidates of a row, against the row itself sorted (candidatesBySorting). */
function assertCandidatesOf(logits: Float32Array, candidates: Candidates): void {
  const expected = candidatesBySorting(logits);
  assert.deepEqual(Array.from(candidates.ids), Array.from(expected.ids));
  assert.deepEqual(Array.from(candidates.logits), Array.from(expected.logits));
}

/** Drives a Gpt2Decoder and its BatchKvCache, mirroring the cache's slots in `active`. */
class DecoderRun {
  readonly active: DecodedSequence[] = [];
  readonly cache: BatchKvCache;
  constructor(private readonly decoder: Gpt2Decoder) {
    this.cache = decoder.newBatchCache();
  }

  join(sequence: DecodedSequence): void {
    assert.equal(this.cache.add(), this.active.length);
    this.active.push(sequence);
  }

  /** One run: the sequence in slot s takes its next `counts[s]` tokens (1 each when left out: a decode step). */
  async forward(counts: readonly number[] = this.active.map(() => 1)): Promise<void> {
    const scores = await this.decoder.forward(
      this.cache,
      this.active.map((sequence, slot) => sequence.tokens.slice(sequence.fed, sequence.fed + counts[slot])),
    );
    assert.equal(scores.length, this.active.length);
    this.active.forEach((sequence, slot) => {
      const { logits, candidates } = scores[slot];
      assert.ok(logits);
      assertCandidatesOf(logits, candidates);
      sequence.fed += counts[slot];
      sequence.record(logits);
      assert.equal(this.cache.sequenceLength(slot), sequence.fed, `slot ${slot} length`);
    });
  }

  leave(slot: number): void {
    const moved = this.cache.remove(slot);
    const last = this.active.pop() as DecodedSequence;
    if (moved !== null) this.active[slot] = last;
  }
}

// Row 0 has 4 padding columns, so the first chunk of the cached run is padding only.
describeModel('tiny (initializer_range 0.1)', makeConfig({ ...presetConfig('tiny'), initializer_range: 0.1 }), 11, [6, 10], [3, 4, 1, 1, 1], (fixture) => {
  it('export graph: positions that ignore the padding are caught', async () => {
    const { exportSession, batch, reference, config } = fixture();
    const width = batch.ids[0].length;
    const naive = batch.ids.map((row) => row.map((_, t) => t));
    const { logits } = await runExport(exportSession, batch, 0, width, emptyPast(config, 2), naive);
    const vocab = config.vocab_size;
    const lastOfPaddedRow = (logits.data as Float32Array).subarray((width - 1) * vocab, width * vocab);
    assert.ok(maxAbsDiff(lastOfPaddedRow, reference[0][width - 1]) > 100 * TOLERANCE);
  });

  it('export graph: Optimum names, dims and a symbolic batch_size', () => {
    const { config, exportBytes, exportSession } = fixture();
    const graph = onnx.ModelProto.decode(exportBytes).graph!;
    const dimsOf = (info: onnxProto.onnx.IValueInfoProto) =>
      info.type!.tensorType!.shape!.dim!.map((dim) => (dim.dimParam ? dim.dimParam : Number(dim.dimValue)));
    const H = config.n_head;
    const D = headSize(config);
    const layers = Array.from({ length: config.n_layer }, (_, layer) => layer);
    const cacheNames = (prefix: string) => layers.flatMap((layer) => [`${prefix}.${layer}.key`, `${prefix}.${layer}.value`]);
    assert.deepEqual(
      graph.input!.map((info) => info.name),
      ['input_ids', 'attention_mask', 'position_ids', ...cacheNames('past_key_values')],
    );
    assert.deepEqual(
      graph.output!.map((info) => info.name),
      ['logits', ...cacheNames('present')],
    );
    assert.deepEqual([...exportSession.inputNames].sort(), graph.input!.map((info) => info.name!).sort());
    assert.deepEqual([...exportSession.outputNames].sort(), graph.output!.map((info) => info.name!).sort());
    const inputs = new Map(graph.input!.map((info) => [info.name!, info]));
    const outputs = new Map(graph.output!.map((info) => [info.name!, info]));
    for (const info of graph.input!) assert.equal(dimsOf(info)[0], 'batch_size', `${info.name} batch dim`);
    assert.deepEqual(dimsOf(inputs.get('input_ids')!), ['batch_size', 'sequence_length']);
    assert.deepEqual(dimsOf(inputs.get('position_ids')!), ['batch_size', 'sequence_length']);
    assert.deepEqual(dimsOf(inputs.get('attention_mask')!), ['batch_size', 'past_sequence_length + sequence_length']);
    assert.equal(inputs.get('input_ids')!.type!.tensorType!.elemType, onnx.TensorProto.DataType.INT64);
    for (const name of cacheNames('past_key_values')) {
      assert.deepEqual(dimsOf(inputs.get(name)!), ['batch_size', H, 'past_sequence_length', D]);
      assert.equal(inputs.get(name)!.type!.tensorType!.elemType, onnx.TensorProto.DataType.FLOAT);
    }
    assert.deepEqual(dimsOf(outputs.get('logits')!), ['batch_size', 'sequence_length', config.vocab_size]);
    for (const name of cacheNames('present')) {
      assert.deepEqual(dimsOf(outputs.get(name)!), ['batch_size', H, 'past_sequence_length + sequence_length', D]);
    }
  });

  it('runtime graph: a batched prefill, chunks beside decode steps, a join mid-way, leaves', async () => {
    const { config, runtimeSession, model } = fixture();
    const random = new SeededRandom(99);
    const [a, b, c] = [14, 14, 18].map((length) => new DecodedSequence(randomTokens(random, length, config.vocab_size)));
    const run = new DecoderRun(new Gpt2Decoder(runtimeSession, config));
    run.join(a);
    run.join(b);
    await run.forward([5, 3]); // a and b prefilled together, b left-padded
    for (let i = 0; i < 3; i++) await run.forward(); // a 8, b 6
    run.join(c);
    await run.forward([1, 1, 7]); // c's first chunk beside a decode step of a and b: a 9, b 7, c 7
    await run.forward([1, 1, 5]); // a 10, b 8, c 12: the longest
    for (let i = 0; i < 3; i++) await run.forward(); // a 13, b 11, c 15
    run.leave(0); // a leaves; c, the last, moves into its slot
    assert.deepEqual(run.active, [c, b]);
    await run.forward(); // c 16, b 12
    run.leave(0); // c, the longest, leaves
    for (let i = 0; i < 2; i++) await run.forward(); // b 14
    assert.deepEqual([a.fed, b.fed, c.fed], [13, 14, 16]);
    for (const [label, sequence] of Object.entries({ a, b, c })) {
      sequence.assertMatches(referenceForward(model, [sequence.tokens.slice(0, sequence.fed)])[0], label);
    }
  });
  it("runtime graph: each row's repetition penalty lowers its own seen tokens, before the candidates", async () => {
    const { config, runtimeSession } = fixture();
    const decoder = new Gpt2Decoder(runtimeSession, config);
    const random = new SeededRandom(7);
    const prompts = [9, 5, 7].map((length) => randomTokens(random, length, config.vocab_size));
    const run = async (penalties?: RepetitionPenalty[]) => {
      const cache = decoder.newBatchCache();
      for (const ids of prompts) cache.add(ids.length);
      return decoder.forward(cache, prompts, { penalties });
    };
    const plain = await run();
    // Seen sets of different sizes (the shorter padded in the feed), with repeats in the prompt
    // counted once; a penalty above 1, one below, and none.
    const seen = [new Set([...prompts[0], prompts[0][0]]), new Set(prompts[1].slice(0, 3)), new Set(prompts[2])];
    const penalties = [1.3, 0.7, 1].map((penalty, row) => ({ penalty, seen: new SeenTokens(seen[row]) }));
    const penalized = await run(penalties);
    penalized.forEach(({ logits, candidates }, row) => {
      assert.ok(logits);
      const raw = plain[row].logits as Float32Array;
      const { penalty } = penalties[row];
      let lowered = 0;
      for (let id = 0; id < raw.length; id++) {
        if (!seen[row].has(id) || penalty === 1) {
          assert.equal(logits[id], raw[id], `row ${row} id ${id} is not seen: untouched`);
          continue;
        }
        const expected = penalizedReference(raw[id], penalty);
        assert.ok(Math.abs(logits[id] - expected) <= 1e-6 * Math.abs(expected), `row ${row} id ${id}: ${logits[id]} vs ${expected}`);
        if (logits[id] !== raw[id]) lowered++;
      }
      if (penalty !== 1) assert.equal(lowered, seen[row].size, `row ${row}: every seen token changed`);
      assertCandidatesOf(logits, candidates);
    });
    await assert.rejects(run([penalties[0]]), /a batch of 3 slots takes 3 penalties, got 1/);
  });
});

describe('SeenTokens', () => {
  it('keeps each token once, first seen first, as int64, growing past its first 64', () => {
    const tokens = Array.from({ length: 300 }, (_, i) => (i * 37) % 150);
    const seen = new SeenTokens(tokens.slice(0, 100));
    for (const token of tokens.slice(100)) seen.add(token);
    const expected = [...new Set(tokens)];
    assert.equal(seen.size, 150);
    assert.deepEqual(Array.from(seen.int64, Number), expected);
  });
});

describeModel(
  '2 layers, 768 wide',
  makeConfig({ n_layer: 2, n_head: 12, n_embd: 768, n_positions: 128 }),
  21,
  [4, 6],
  [3, 1, 1, 1],
  (fixture) => {
    it('runtime graph: prefill, a batch of two decoding, one leaving', async () => {
      // The batch rows, unpadded, so the export run's reference serves again.
      const { config, runtimeSession, batch, reference } = fixture();
      const [short, long] = batch.ids.map((row, b) => new DecodedSequence(row.slice(batch.padding[b])));
      const run = new DecoderRun(new Gpt2Decoder(runtimeSession, config));
      run.join(long);
      run.join(short);
      await run.forward([3, 2]);
      for (let i = 0; i < 2; i++) await run.forward(); // long 5, short 4
      run.leave(1);
      await run.forward(); // long 6
      assert.deepEqual([short.fed, long.fed], [4, 6]);
      short.assertMatches(reference[0].slice(batch.padding[0]), 'short');
      long.assertMatches(reference[1].slice(batch.padding[1]), 'long');
    });
  },
);
