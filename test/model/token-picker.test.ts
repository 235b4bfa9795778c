import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SAMPLING_CANDIDATES } from '../../src/model/gpt2-graph.js';
import { logitsProcessors } from '../../src/model/generation/logits-processors.js';
import { type GenerationOptions, type ResolvedGenerationOptions, resolveGenerationOptions } from '../../src/model/generation/options.js';
import { greedySampler, multinomialSampler } from '../../src/model/generation/sampler.js';
import { TokenPicker } from '../../src/model/generation/token-picker.js';
import { SeededRandom } from '../../src/model/random.js';
import type { NextTokenScores } from '../../src/model/runtime/decoder.js';

const VOCAB = 3000;

/** A run's scores for a row: its candidates built here by sorting the row (the lower id first on a tie), and the row when `whole`. */
function scoresOf(logits: Float32Array, whole: boolean): NextTokenScores {
  const best = Array.from(logits, (_, id) => id)
    .sort((a, b) => logits[b] - logits[a] || a - b)
    .slice(0, SAMPLING_CANDIDATES);
  const ids = [...best].sort((a, b) => a - b);
  return {
    candidates: { ids: Int32Array.from(ids), logits: Float32Array.from(ids, (id) => logits[id]), floor: logits[best[best.length - 1]] },
    logits: whole ? Float32Array.from(logits) : null,
  };
}

/** The reference: every processor over the whole row, then the sampler, as before candidates. */
function wholeRowPicker(options: ResolvedGenerationOptions): (tokens: readonly number[], logits: Float32Array) => number {
  const processors = logitsProcessors(options);
  const sampler = options.greedy ? greedySampler() : multinomialSampler(options.seed);
  return (tokens, logits) => {
    const row = Float32Array.from(logits);
    for (const process of processors) process(tokens, row);
    return sampler.next(row);
  };
}

/**
 * Rows like a language model's: mostly noise, a few clear favourites, and (every third row)
 * the favourites among the tokens already seen, where a repetition penalty reorders them.
 */
function rows(count: number, seed: number, seen: readonly number[]): Float32Array[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, (_, r) => {
    const row = Float32Array.from({ length: VOCAB }, () => (random.next() - 0.5) * 6 - 20);
    for (let i = 0; i < 12; i++) row[Math.floor(random.next() * VOCAB)] += 8 + random.next() * 8;
    if (r % 3 === 0) for (const id of seen.slice(0, 30)) row[id] += 10 + random.next() * 4;
    return row;
  });
}

const SETTINGS: readonly { readonly options: GenerationOptions; readonly wholeRow: boolean }[] = [
  { options: { greedy: true, repetitionPenalty: 1 }, wholeRow: false },
  { options: { greedy: true, repetitionPenalty: 1.3 }, wholeRow: true },
  { options: { temperature: 0.8, topK: 40, repetitionPenalty: 1.1, seed: 7 }, wholeRow: true },
  { options: { temperature: 1.5, topK: 10, repetitionPenalty: 1, seed: 8 }, wholeRow: false },
  { options: { topK: SAMPLING_CANDIDATES, topP: 0.9, repetitionPenalty: 1, seed: 9 }, wholeRow: false },
  { options: { topK: SAMPLING_CANDIDATES + 1, repetitionPenalty: 1, seed: 10 }, wholeRow: true },
  { options: { topK: 0, topP: 0.9, repetitionPenalty: 1, seed: 11 }, wholeRow: true },
  { options: { greedy: true, repetitionPenalty: 0.8 }, wholeRow: true },
];

describe('TokenPicker', () => {
  for (const { options, wholeRow } of SETTINGS) {
    it(`picks what the whole row picks, ${JSON.stringify(options)}`, () => {
      const resolved = resolveGenerationOptions(options);
      const picker = new TokenPicker(resolved);
      assert.equal(picker.needsWholeRow, wholeRow);
      const reference = wholeRowPicker(resolved);
      const tokens = Array.from({ length: 50 }, (_, i) => (i * 61) % VOCAB);
      for (const row of rows(150, 3, tokens)) {
        // Without whole rows the candidates must do alone.
        const picked = picker.pick(tokens, scoresOf(row, wholeRow));
        assert.equal(picked, reference(tokens, row), `token ${tokens.length}`);
        tokens.push(picked);
      }
    });
  }

  it('lets the whole row decide when the penalty leaves the candidates short of the best k', () => {
    // The 64 best are all seen and fall below the floor under the penalty: the pick lies outside them.
    const row = Float32Array.from({ length: VOCAB }, (_, id) => (id < SAMPLING_CANDIDATES ? 10 + id / 100 : Math.sin(id)));
    const seen = Array.from({ length: SAMPLING_CANDIDATES }, (_, id) => id);
    const options = resolveGenerationOptions({ greedy: true, repetitionPenalty: 20 });
    const expected = wholeRowPicker(options)(seen, row);
    assert.ok(expected >= SAMPLING_CANDIDATES);
    assert.equal(new TokenPicker(options).pick(seen, scoresOf(row, true)), expected);
    assert.throws(() => new TokenPicker(options).pick(seen, scoresOf(row, false)), /whole rows/);
  });
});
