import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuseConfidence, fuseRankings } from '../../src/core/retrieval/fusion.js';

const close = (actual: number, expected: number, label: string) => assert.ok(Math.abs(actual - expected) < 1e-12, `${label}: ${actual}, expected ${expected}`);

describe('fuseConfidence', () => {
  it('matches hand-computed values of 1 - (1 - l)^w (1 - d)^(1 - w)', () => {
    close(fuseConfidence(0.8, 0.8), 0.8, 'agreement keeps the level');
    close(fuseConfidence(1, 0), 1, 'a sure lexical match');
    close(fuseConfidence(0, 1), 1, 'a sure dense match');
    close(fuseConfidence(0, 0), 0, 'nothing');
    close(fuseConfidence(0.75, 0), 0.5, '1 - sqrt(0.25)');
    close(fuseConfidence(0.91, 0.19), 0.73, '1 - sqrt(0.09 * 0.81) = 1 - 0.27');
    close(fuseConfidence(0.9375, 0, 0.75), 0.875, '1 - (1/16)^(3/4) = 1 - 1/8');
    close(fuseConfidence(0, 0.9375, 0.25), 0.875, 'the same with the weights swapped');
    close(fuseConfidence(0.5, 0.5), 0.5, 'two weak signals stay weak');
  });

  it('is monotone in each signal and lies between the two', () => {
    const grid = Array.from({ length: 21 }, (_, i) => i / 20);
    for (const w of [0.25, 0.5, 0.75]) {
      for (const l of grid) {
        for (const [j, d] of grid.entries()) {
          const fused = fuseConfidence(l, d, w);
          assert.ok(fused >= Math.min(l, d) - 1e-12 && fused <= Math.max(l, d) + 1e-12, `fused(${l}, ${d}) = ${fused}`);
          if (j > 0) assert.ok(fused >= fuseConfidence(l, grid[j - 1], w), `not monotone in dense at l=${l}, d=${d}, w=${w}`);
          if (l > 0) assert.ok(fused >= fuseConfidence(l - 0.05, d, w), `not monotone in lexical at l=${l}, d=${d}, w=${w}`);
        }
      }
    }
  });

  it('refuses inputs outside 0..1', () => {
    assert.throws(() => fuseConfidence(1.1, 0), /a lexical confidence must be in 0\.\.1, got 1\.1/);
    assert.throws(() => fuseConfidence(0, -0.1), /a dense confidence must be in 0\.\.1, got -0\.1/);
    assert.throws(() => fuseConfidence(Number.NaN, 0), /got NaN/);
    assert.throws(() => fuseConfidence(0, 0, 2), /the lexical weight must be in 0\.\.1, got 2/);
  });
});

describe('fuseRankings', () => {
  it('ranks the union of both rankings by fused confidence, a missing entry counting 0, and drops what fuses to 0', () => {
    const fused = fuseRankings(
      [
        { entryId: 'a', confidence: 0.9 },
        { entryId: 'b', confidence: 0.6 },
        { entryId: 'c', confidence: 0.2 },
      ],
      [
        { entryId: 'a', confidence: 0 },
        { entryId: 'b', confidence: 0.84 },
        { entryId: 'd', confidence: 0.75 },
        { entryId: 'e', confidence: 0 },
      ],
    );
    assert.deepEqual(
      fused.map((hit) => hit.entryId),
      ['b', 'a', 'd', 'c'],
    );
    // b: 1 - sqrt(0.4 * 0.16); a: 1 - sqrt(0.1); d: 1 - sqrt(0.25); c: 1 - sqrt(0.8)
    const expected = { b: 1 - Math.sqrt(0.064), a: 1 - Math.sqrt(0.1), d: 0.5, c: 1 - Math.sqrt(0.8) };
    for (const hit of fused) close(hit.confidence, expected[hit.entryId as keyof typeof expected], hit.entryId);
    assert.deepEqual(
      fused.map((hit) => [hit.lexical, hit.dense]),
      [
        [0.6, 0.84],
        [0.9, 0],
        [0, 0.75],
        [0.2, 0],
      ],
    );
  });

  it('breaks ties by the stronger input, then by the order entries came in', () => {
    // w = 0: the fused confidence is the dense one, 0.5 for both; x has the stronger lexical input.
    assert.deepEqual(
      fuseRankings(
        [
          { entryId: 'y', confidence: 0.2 },
          { entryId: 'x', confidence: 0.9 },
        ],
        [
          { entryId: 'y', confidence: 0.5 },
          { entryId: 'x', confidence: 0.5 },
        ],
        0,
      ).map((hit) => hit.entryId),
      ['x', 'y'],
    );
    // 1 - sqrt(0.64) both ways, and 0.36 the stronger input of each: first come, first ranked.
    assert.deepEqual(
      fuseRankings([{ entryId: 'p', confidence: 0.36 }], [{ entryId: 'q', confidence: 0.36 }]).map((hit) => hit.entryId),
      ['p', 'q'],
    );
  });

  it('refuses an entry listed twice and a confidence outside 0..1', () => {
    assert.throws(
      () => fuseRankings([{ entryId: 'a', confidence: 0.1 }, { entryId: 'a', confidence: 0.2 }], []),
      /the lexical ranking lists a twice/,
    );
    assert.throws(() => fuseRankings([], [{ entryId: 'a', confidence: 1.5 }]), /the dense confidence of a must be in 0\.\.1, got 1\.5/);
  });
});
