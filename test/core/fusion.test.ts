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
  it('orders by 1 / (5 + place) summed over both rankings, fuses the confidences, and drops what fuses to 0', () => {
    // s is the surface match: BM25 is sure of it, the dense ranking puts it third. m is second
    // in BM25 and first by meaning: it goes first, though s is the more confident.
    const fused = fuseRankings(
      [
        { entryId: 's', confidence: 1 },
        { entryId: 'm', confidence: 0.3 },
      ],
      [
        { entryId: 'm', confidence: 0.6 },
        { entryId: 'x', confidence: 0.2 },
        { entryId: 's', confidence: 0 },
        { entryId: 'z', confidence: 0 },
      ],
    );
    assert.deepEqual(
      fused.map((hit) => hit.entryId),
      ['m', 's', 'x'],
      'z fuses to 0 and is left out',
    );
    const expected = {
      m: { rankScore: 1 / 7 + 1 / 6, confidence: 1 - Math.sqrt(0.7 * 0.4) },
      s: { rankScore: 1 / 6 + 1 / 8, confidence: 1 },
      x: { rankScore: 1 / 7, confidence: 1 - Math.sqrt(0.8) },
    };
    for (const hit of fused) {
      const want = expected[hit.entryId as keyof typeof expected];
      close(hit.rankScore, want.rankScore, `${hit.entryId} rank score`);
      close(hit.confidence, want.confidence, `${hit.entryId} confidence`);
    }
    assert.deepEqual(
      fused.map((hit) => [hit.lexical, hit.dense]),
      [
        [0.3, 0.6],
        [1, 0],
        [0, 0.2],
      ],
    );
  });

  it('takes k and the lexical weight from the options', () => {
    // p: places 1 and 4; q: 2 and 2; x: dense 1; y: dense 3.
    const lexical = [
      { entryId: 'p', confidence: 0.5 },
      { entryId: 'q', confidence: 0.4 },
    ];
    const dense = [
      { entryId: 'x', confidence: 0.3 },
      { entryId: 'q', confidence: 0.6 },
      { entryId: 'y', confidence: 0.2 },
      { entryId: 'p', confidence: 0.1 },
    ];
    const order = (rankOffset?: number) => fuseRankings(lexical, dense, rankOffset === undefined ? {} : { rankOffset }).map((hit) => hit.entryId);
    // k = 0: p 1 + 1/4 = 1.25; q 1/2 + 1/2 = 1 and x 1, tied: q's confidence 1 - sqrt(0.24) = 0.51 beats x's 1 - sqrt(0.7) = 0.16.
    assert.deepEqual(order(0), ['p', 'q', 'x', 'y']);
    // k = 5: p 1/6 + 1/9 = 0.278 < q 2/7 = 0.286. k = 60: p 1/61 + 1/64 = 0.0310 < q 2/62 = 0.0323.
    assert.deepEqual(order(), ['q', 'p', 'x', 'y']);
    assert.deepEqual(order(60), ['q', 'p', 'x', 'y']);
    // w = 1: the confidence is BM25's alone; x and y, unlisted there, fuse to 0.
    const lexicalOnly = fuseRankings(lexical, dense, { lexicalWeight: 1 });
    assert.deepEqual(
      lexicalOnly.map((hit) => [hit.entryId, hit.confidence]),
      [
        ['q', 0.4],
        ['p', 0.5],
      ],
    );
  });

  it('breaks a tie in rank score by the higher confidence, then by the order entries came in', () => {
    // 1/6 each; 1 - sqrt(0.64) = 0.2 each: first come, first ranked.
    assert.deepEqual(
      fuseRankings([{ entryId: 'p', confidence: 0.36 }], [{ entryId: 'q', confidence: 0.36 }]).map((hit) => hit.entryId),
      ['p', 'q'],
    );
    assert.deepEqual(
      fuseRankings([{ entryId: 'p', confidence: 0.36 }], [{ entryId: 'q', confidence: 0.51 }]).map((hit) => hit.entryId),
      ['q', 'p'],
    );
  });

  it('refuses an entry listed twice, a confidence outside 0..1 and a negative k', () => {
    assert.throws(
      () => fuseRankings([{ entryId: 'a', confidence: 0.1 }, { entryId: 'a', confidence: 0.2 }], []),
      /the lexical ranking lists a twice/,
    );
    assert.throws(() => fuseRankings([], [{ entryId: 'a', confidence: 1.5 }]), /the dense confidence of a must be in 0\.\.1, got 1\.5/);
    assert.throws(() => fuseRankings([], [], { rankOffset: -1 }), /the rank offset must be a number >= 0, got -1/);
    assert.throws(() => fuseRankings([{ entryId: 'a', confidence: 0.5 }], [], { lexicalWeight: 2 }), /the lexical weight must be in 0\.\.1, got 2/);
  });
});
