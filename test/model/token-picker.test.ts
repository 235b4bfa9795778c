import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SAMPLING_CANDIDATES } from '../../src/model/gpt2-graph.js';
import { logitsProcessors } from '../../src/model/generation/logits-processors.js';
import { type GenerationOptions, type ResolvedGenerationOptions, resolveGenerationOptions } from '../../src/model/generation/options.js';
import { greedySampler, multinomialSampler } from '../../src/model/generation/sampler.js';
import { TokenPicker } from '../../src/model/generation/token-picker.js';
import { SeededRandom } from '../../src/model/random.js';
import type { NextTokenScores } from '../../src/model/runtime/decoder.js';
import { candidatesBySorting } from '../helpers/candidates.js';

const VOCAB = 3000;

/** A run's scores for a row: its candidates worked out here by sorting the row, and the row when `whole`. */
function scoresOf(logits: Float32Array, whole: boolean): NextTokenScores {
  return { candidates: candidatesBySorting(logits), logits: whole ? Float32Array.from(logits) : null };
}

/** The reference: every processor over the whole row, then the sampler, as before candidates. */
function wholeRowPicker(options: ResolvedGenerationOptions): (logits: Float32Array) => number {
  const processors = logitsProcessors(options);
  const sampler = options.greedy ? greedySampler() : multinomialSampler(options.seed);
  return (logits) => {
    const row = Float32Array.from(logits);
    for (const process of processors) process(row);
    return sampler.next(row);
  };
}

/** Rows like a language model's: mostly noise, a few clear favourites, and (every third row) 40 close ones. */
function rows(count: number, seed: number): Float32Array[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, (_, r) => {
    const row = Float32Array.from({ length: VOCAB }, () => (random.next() - 0.5) * 6 - 20);
    for (let i = 0; i < 12; i++) row[Math.floor(random.next() * VOCAB)] += 8 + random.next() * 8;
    if (r % 3 === 0) for (let i = 0; i < 40; i++) row[(i * 61) % VOCAB] += 20 + random.next() * 2;
    return row;
  });
}

const SETTINGS: readonly { readonly options: GenerationOptions; readonly wholeRow: boolean }[] = [
  { options: { greedy: true, repetitionPenalty: 1 }, wholeRow: false },
  { options: { greedy: true, repetitionPenalty: 1.3 }, wholeRow: false },
  { options: { temperature: 0.8, topK: 40, topP: 0.95, repetitionPenalty: 1.1, seed: 7 }, wholeRow: false },
  { options: { temperature: 1.5, topK: 10, repetitionPenalty: 1, seed: 8 }, wholeRow: false },
  { options: { topK: SAMPLING_CANDIDATES, topP: 0.9, repetitionPenalty: 1, seed: 9 }, wholeRow: false },
  { options: { topK: SAMPLING_CANDIDATES + 1, repetitionPenalty: 1, seed: 10 }, wholeRow: true },
  { options: { topK: 0, topP: 0.9, repetitionPenalty: 1, seed: 11 }, wholeRow: true },
  { options: { greedy: true, repetitionPenalty: 0.8 }, wholeRow: false },
];

describe('TokenPicker', () => {
  for (const { options, wholeRow } of SETTINGS) {
    it(`picks what the whole row picks, ${JSON.stringify(options)}`, () => {
      const resolved = resolveGenerationOptions(options);
      const picker = new TokenPicker(resolved);
      assert.equal(picker.needsWholeRow, wholeRow);
      const reference = wholeRowPicker(resolved);
      for (const [i, row] of rows(150, 3).entries()) {
        // Without whole rows the candidates must do alone.
        assert.equal(picker.pick(scoresOf(row, wholeRow)), reference(row), `row ${i}`);
      }
    });
  }

  it('refuses to guess when a run left out the whole row its options need', () => {
    const [row] = rows(1, 4);
    assert.throws(() => new TokenPicker(resolveGenerationOptions({ topK: 0, seed: 1 })).pick(scoresOf(row, false)), /whole rows/);
  });
});
