import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_CALIBRATION, calibrateFromIndex, calibratedSimilarity, quantile } from '../../src/core/retrieval/dense-calibration.js';
import { DenseIndex } from '../../src/core/retrieval/dense-index.js';

const v = (...values: number[]) => Float32Array.from(values);
const close = (actual: number, expected: number, label: string) => assert.ok(Math.abs(actual - expected) < 1e-6, `${label}: ${actual}, expected ${expected}`);

describe('DenseIndex', () => {
  // e1 has a question and an alternate; e2's vector is not unit length; e3 sits between e1's two.
  const index = new DenseIndex([
    { id: 'e1', vectors: [v(1, 0, 0), v(0, 1, 0)] },
    { id: 'e2', vectors: [v(0, 0, 2)] },
    { id: 'e3', vectors: [v(1, 1, 0)] },
  ]);

  it("scores an entry by its closest phrasing's cosine", () => {
    const hits = index.similarities(v(0, 3, 0));
    assert.deepEqual(
      hits.map((hit) => [hit.entryId, hit.phrasing]),
      [
        ['e1', 1],
        ['e2', 0],
        ['e3', 0],
      ],
    );
    close(hits[0].similarity, 1, 'e1 by its alternate');
    close(hits[1].similarity, 0, 'e2');
    close(hits[2].similarity, Math.SQRT1_2, 'e3 at 45 degrees');
  });

  it('searches best first, ties in entry order, k at most', () => {
    assert.deepEqual(
      index.search(v(1, 0, 0), 2).map((hit) => hit.entryId),
      ['e1', 'e3'],
    );
    assert.deepEqual(
      index.search(v(0, 0, -1), 3).map((hit) => [hit.entryId, Math.round(hit.similarity)]),
      [
        ['e1', 0],
        ['e3', 0],
        ['e2', -1],
      ],
    );
    assert.deepEqual(index.search(v(1, 0, 0), 0), []);
    assert.throws(() => index.search(v(1, 0, 0), -1), /k must be a whole number >= 0/);
  });

  it("measures two entries' questions' similarity, not their alternates'", () => {
    close(index.questionSimilarity(0, 2), Math.SQRT1_2, 'e1 and e3');
    close(index.questionSimilarity(0, 1), 0, 'e1 and e2');
    close(index.questionSimilarity(2, 0), Math.SQRT1_2, 'symmetric');
  });

  it('refuses repeated ids, entries without vectors, vectors without direction and mismatched dimensions', () => {
    assert.throws(() => new DenseIndex([{ id: 'a', vectors: [v(1)] }, { id: 'a', vectors: [v(1)] }]), /entry a is in the dense index twice/);
    assert.throws(() => new DenseIndex([{ id: 'a', vectors: [] }]), /entry a has no phrasing vectors/);
    assert.throws(() => new DenseIndex([{ id: 'a', vectors: [v(0, 0)] }]), /entry a phrasing 0 has no direction/);
    assert.throws(() => new DenseIndex([{ id: 'a', vectors: [v(1, 0)] }, { id: 'b', vectors: [v(1, 0, 0)] }]), /entry b phrasing 0 has 3 dimensions, the index 2/);
    assert.throws(() => index.similarities(v(Number.NaN, 0, 0)), /the query vector has no direction/);
  });
});

describe('dense calibration', () => {
  it('maps a cosine linearly from unrelated (0) to paraphrase (1), clamped', () => {
    const calibration = { unrelated: 0.3, paraphrase: 0.8 };
    for (const [similarity, expected] of [
      [-0.2, 0],
      [0.3, 0],
      [0.55, 0.5],
      [0.8, 1],
      [0.95, 1],
    ]) {
      close(calibratedSimilarity(similarity, calibration), expected, `cosine ${similarity}`);
    }
  });

  it('takes quantiles as numpy does (linear between order statistics)', () => {
    close(quantile([5, 1, 4, 2, 3], 0.9), 4.6, '90th percentile');
    close(quantile([3, 1, 2], 0.5), 2, 'median');
    close(quantile([7], 0.9), 7, 'one value');
  });

  it('sets unrelated at the 90th percentile of question pairs and paraphrase 60% of the way from there to 1', () => {
    // Pairs: B-C 0, B-D 0.8, C-D 0 -> 0.64; 0.64 + 0.6 * 0.36 = 0.856.
    const calibration = calibrateFromIndex(
      new DenseIndex([
        { id: 'B', vectors: [v(0, 1, 0)] },
        { id: 'C', vectors: [v(0, 0, 1)] },
        { id: 'D', vectors: [v(0.6, 0.8, 0)] },
      ]),
    );
    close(calibration.unrelated, 0.64, 'unrelated');
    close(calibration.paraphrase, 0.856, 'paraphrase');
  });

  it('leaves alternates out: linking one changes neither level', () => {
    // Questions: A-B 0, A-C 0, B-C 0.6 -> 90th percentile 0.8 * 0.6 = 0.48; 0.48 + 0.6 * 0.52 = 0.792.
    // A's alternate is B's question and far from A's own: measured on alternates, both levels would move.
    const questions = [
      { id: 'A', vectors: [v(1, 0, 0)] },
      { id: 'B', vectors: [v(0, 1, 0)] },
      { id: 'C', vectors: [v(0, 0.6, 0.8)] },
    ];
    const withAlternate = [{ id: 'A', vectors: [v(1, 0, 0), v(0, 1, 0)] }, ...questions.slice(1)];
    for (const entries of [questions, withAlternate]) {
      const calibration = calibrateFromIndex(new DenseIndex(entries));
      close(calibration.unrelated, 0.48, `unrelated, ${entries[0].vectors.length - 1} alternates`);
      close(calibration.paraphrase, 0.792, `paraphrase, ${entries[0].vectors.length - 1} alternates`);
    }
  });

  it('keeps the levels at least 0.05 apart and below 1, and falls back to defaults with nothing to measure', () => {
    // A model that finds everything alike: only an identical vector counts as sure.
    const alike = calibrateFromIndex(
      new DenseIndex([
        { id: 'a', vectors: [v(1, 0)] },
        { id: 'b', vectors: [v(1, 0)] },
      ]),
    );
    close(alike.unrelated, 0.95, 'unrelated capped');
    close(alike.paraphrase, 1, 'paraphrase: 0.95 + 0.6 * 0.05 lifted to 0.95 + 0.05');
    assert.deepEqual(calibrateFromIndex(new DenseIndex([{ id: 'only', vectors: [v(1, 0)] }])), DEFAULT_CALIBRATION);
  });
});
