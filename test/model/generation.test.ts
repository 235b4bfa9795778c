import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { presetConfig } from '../../src/model/config.js';
import { ModelError } from '../../src/model/errors.js';
import { logitsProcessors, temperature, topK, topP } from '../../src/model/generation/logits-processors.js';
import { DEFAULT_GENERATION, type GenerationOptions, resolveGenerationOptions } from '../../src/model/generation/options.js';
import { greedySampler, multinomialSampler } from '../../src/model/generation/sampler.js';
import { TextStream } from '../../src/model/generation/text-stream.js';
import { fitPrompt } from '../../src/model/runtime/prompt.js';
import { SeededRandom } from '../../src/model/random.js';

// ---- independent float64 references (sort-based, no heaps, no shared helpers) ----

function randomLogits(random: SeededRandom, length: number, scale = 3): Float32Array {
  return Float32Array.from({ length }, () => random.normal() * scale);
}

/** Indices sorted by value, largest first, lowest id first among equals; -Infinity left out. */
function rankedIds(values: ArrayLike<number>): number[] {
  const ids: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i] !== -Infinity) ids.push(i);
  return ids.sort((a, b) => (values[b] === values[a] ? a - b : values[b] - values[a]));
}

function referenceSoftmax(values: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) max = Math.max(max, values[i]);
  const exps = Array.from({ length: values.length }, (_, i) => (values[i] === -Infinity ? 0 : Math.exp(values[i] - max)));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** HF's order after the repetition penalty (the graph's): temperature, top-k, top-p; greedy changes nothing. */
function referencePipeline(input: Float32Array, o: Required<Omit<GenerationOptions, 'stop' | 'seed'>>): number[] {
  const x = Array.from(input);
  if (o.greedy) return x;
  for (let i = 0; i < x.length; i++) x[i] /= o.temperature;
  if (o.topK > 0 && o.topK < x.length) {
    const kth = [...x].sort((a, b) => b - a)[o.topK - 1];
    for (let i = 0; i < x.length; i++) if (x[i] < kth) x[i] = -Infinity;
  }
  if (o.topP < 1) {
    const ranked = rankedIds(x);
    const probabilities = referenceSoftmax(x);
    let cumulative = 0;
    let kept = 0;
    while (cumulative < o.topP) cumulative += probabilities[ranked[kept++]];
    for (const id of ranked.slice(kept)) x[id] = -Infinity;
  }
  return x;
}

const finiteIds = (values: ArrayLike<number>) => rankedIds(values).sort((a, b) => a - b);

describe('logits processors', () => {
  it('temperature divides every logit', () => {
    const logits = Float32Array.from([2, -1, 0.3]);
    temperature(0.5)(logits);
    assert.deepEqual([...logits], [4, -2, Math.fround(Math.fround(0.3) / 0.5)]);
  });

  it('top-k keeps the k largest and every logit tied with the k-th', () => {
    const logits = Float32Array.from([1, 3, 3, 2, 3, 0]);
    topK(2)(logits);
    assert.deepEqual([...logits], [-Infinity, 3, 3, -Infinity, 3, -Infinity]);
    const small = Float32Array.from([1, 2]);
    topK(5)(small);
    assert.deepEqual([...small], [1, 2]);
  });

  it('top-k matches a sort on random logits', () => {
    const random = new SeededRandom(11);
    for (const k of [1, 2, 7, 50, 999, 1000]) {
      const logits = randomLogits(random, 1000);
      const kth = [...logits].sort((a, b) => b - a)[k - 1];
      const expected = [...logits].map((v) => (v >= kth ? v : -Infinity));
      topK(k)(logits);
      assert.deepEqual([...logits], expected, `k=${k}`);
      assert.equal(finiteIds(logits).length, k);
    }
  });

  it('top-p keeps the smallest most-likely set whose probability reaches p, and always the top token', () => {
    const probabilities = [0.5, 0.3, 0.2];
    const kept = (p: number) => {
      const logits = Float32Array.from(probabilities, Math.log);
      topP(p)(logits);
      return finiteIds(logits);
    };
    assert.deepEqual(kept(0.01), [0]);
    assert.deepEqual(kept(0.49), [0]);
    assert.deepEqual(kept(0.51), [0, 1]);
    assert.deepEqual(kept(0.79), [0, 1]);
    assert.deepEqual(kept(0.81), [0, 1, 2]);
    assert.deepEqual(kept(1), [0, 1, 2]);
    // Four equal logits: exactly 0.25 each, so two tokens reach p = 0.5 exactly; the lowest ids win the tie.
    const uniform = new Float32Array(4);
    topP(0.5)(uniform);
    assert.deepEqual([...uniform], [0, 0, -Infinity, -Infinity]);
  });

  it('top-p matches a sorted float64 reference on random logits', () => {
    const random = new SeededRandom(12);
    for (const p of [0.05, 0.3, 0.5, 0.9, 0.99]) {
      const logits = randomLogits(random, 500);
      const probabilities = referenceSoftmax(logits);
      const expected = referencePipeline(logits, { ...DEFAULT_GENERATION, topK: 0, topP: p });
      topP(p)(logits);
      const kept = finiteIds(logits);
      assert.deepEqual(kept, finiteIds(expected), `p=${p}`);
      const keptMass = kept.reduce((sum, id) => sum + probabilities[id], 0);
      const leastKept = Math.min(...kept.map((id) => probabilities[id]));
      assert.ok(keptMass >= p && keptMass - leastKept < p, `p=${p}: kept mass ${keptMass} is not the smallest set reaching p`);
    }
  });

  it('applies HF order: temperature before top-p', () => {
    // Temperature first: at T=0.5 the top token holds 0.87 >= 0.8 alone; at T=1 it would need two.
    const sharpened = Float32Array.from([2, 1, 0]);
    for (const process of logitsProcessors(resolveGenerationOptions({ temperature: 0.5, topK: 0, topP: 0.8, seed: 0 }))) process(sharpened);
    assert.deepEqual([...sharpened], [4, -Infinity, -Infinity]);
  });

  it('the whole chain matches the reference pipeline on random inputs', () => {
    const random = new SeededRandom(13);
    for (let trial = 0; trial < 40; trial++) {
      const options = resolveGenerationOptions({
        greedy: trial % 5 === 0,
        temperature: 0.3 + random.next() * 1.5,
        topK: [0, 1, 5, 40][trial % 4],
        topP: [1, 0.95, 0.6, 0.2][(trial >> 2) % 4],
        seed: trial,
      });
      const logits = randomLogits(random, 300);
      const expected = referencePipeline(logits, options);
      for (const process of logitsProcessors(options)) process(logits);
      assert.deepEqual(finiteIds(logits), finiteIds(expected), `trial ${trial}`);
      for (const id of finiteIds(expected)) assert.ok(Math.abs(logits[id] - expected[id]) <= 1e-5 * Math.max(1, Math.abs(expected[id])), `trial ${trial} id ${id}`);
    }
  });

  it('greedy leaves the row to the sampler: no processor', () => {
    assert.equal(logitsProcessors(resolveGenerationOptions({ greedy: true, temperature: 0.5, topK: 1, topP: 0.1, repetitionPenalty: 1.5 })).length, 0);
  });
});

describe('samplers', () => {
  it('greedy picks the largest logit, the lowest id on a tie', () => {
    assert.equal(greedySampler().next(Float32Array.from([1, 5, 5, 2])), 1);
    assert.equal(greedySampler().next(Float32Array.from([-Infinity, -3, -Infinity, -2])), 3);
    const random = new SeededRandom(21);
    for (let trial = 0; trial < 20; trial++) {
      const logits = randomLogits(random, 1000);
      assert.equal(greedySampler().next(logits), rankedIds(logits)[0]);
    }
  });

  it('multinomial with a seed replays the same draws', () => {
    const random = new SeededRandom(22);
    const rows = Array.from({ length: 200 }, () => randomLogits(random, 64, 1));
    const draw = (seed: number) => {
      const sampler = multinomialSampler(seed);
      return rows.map((row) => sampler.next(row));
    };
    assert.deepEqual(draw(5), draw(5));
    assert.notDeepEqual(draw(5), draw(6));
  });

  it('multinomial frequencies match the softmax', () => {
    const logits = Float32Array.from([2, 1.5, 1, 0, -1, -Infinity, 0.5, -Infinity]);
    const probabilities = referenceSoftmax(logits);
    const draws = 40_000;
    const counts = new Array<number>(logits.length).fill(0);
    const sampler = multinomialSampler(2024);
    for (let i = 0; i < draws; i++) counts[sampler.next(logits)]++;
    for (let id = 0; id < logits.length; id++) {
      // Each count is Binomial(N, p): mean Np, sd sqrt(Np(1-p)). A fair sampler lands outside
      // 4 sd with probability ~6e-5 per token; a sampler off by a few percent of p lands there.
      const mean = draws * probabilities[id];
      const sd = Math.sqrt(draws * probabilities[id] * (1 - probabilities[id]));
      assert.ok(Math.abs(counts[id] - mean) <= 4 * sd, `token ${id}: ${counts[id]} draws, expected ${mean.toFixed(0)} ± ${(4 * sd).toFixed(0)}`);
    }
    assert.equal(counts[5] + counts[7], 0, 'masked tokens are never drawn');
  });
});

describe('resolveGenerationOptions', () => {
  const rejected: [GenerationOptions, RegExp][] = [
    [{ temperature: -0.1 }, /temperature must be a number >= 0/],
    [{ temperature: Number.NaN }, /temperature must be a number >= 0/],
    [{ topP: 1.01 }, /topP must be in \(0, 1\]/],
    [{ topP: 0 }, /topP must be in \(0, 1\]/],
    [{ maxNewTokens: 0 }, /maxNewTokens must be an integer >= 1/],
    [{ maxNewTokens: 2.5 }, /maxNewTokens must be an integer >= 1/],
    [{ topK: -1 }, /topK must be an integer >= 0/],
    [{ topK: 1.5 }, /topK must be an integer >= 0/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty must be a number > 0/],
    [{ repetitionPenalty: -1 }, /repetitionPenalty must be a number > 0/],
    [{ stop: ['ok', ''] }, /stop must be a list of non-empty strings/],
    [{ seed: -1 }, /seed must be an integer >= 0/],
  ];
  for (const [options, message] of rejected) {
    it(`rejects ${JSON.stringify(options)} with OPTIONS_INVALID`, () => {
      assert.throws(
        () => resolveGenerationOptions(options),
        (error: unknown) => error instanceof ModelError && error.code === 'OPTIONS_INVALID' && message.test(error.message),
      );
    });
  }

  it('fills defaults, ignores undefined fields, and treats temperature 0 as greedy', () => {
    const resolved = resolveGenerationOptions({ temperature: undefined, seed: 3 });
    assert.deepEqual(resolved, { ...DEFAULT_GENERATION, seed: 3 });
    assert.ok(Number.isInteger(resolveGenerationOptions().seed));
    assert.equal(resolveGenerationOptions({ temperature: 0 }).greedy, true);
    assert.equal(resolveGenerationOptions({ temperature: 0.7 }).greedy, false);
  });
});

// ---- TextStream ----

const encoder = new TextEncoder();
const brokenCharacter = /\uFFFD|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Token i is the i-th chunk of the text's UTF-8 bytes, cut at random byte offsets. */
function byteChunks(text: string, random: SeededRandom, maxChunk: number): Uint8Array[] {
  const bytes = encoder.encode(text);
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = 1 + Math.floor(random.next() * maxChunk);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

function streamOf(chunks: readonly Uint8Array[], stop: readonly string[]) {
  const stream = new TextStream((id) => chunks[id], stop);
  const pieces = chunks.map((_, id) => stream.push(id));
  return { stream, pieces, rest: stream.finish() };
}

/** What may be emitted: the text decoded so far when a stop first appears, cut at its earliest occurrence. */
function referenceStopOutput(text: string, chunks: readonly Uint8Array[], stop: readonly string[]): string {
  const characterEnds: number[] = [];
  let bytes = 0;
  for (const character of text) characterEnds.push((bytes += encoder.encode(character).length));
  let received = 0;
  for (const chunk of chunks) {
    received += chunk.length;
    const decoded = [...text].slice(0, characterEnds.filter((end) => end <= received).length).join('');
    const cuts = stop.map((s) => decoded.indexOf(s)).filter((at) => at !== -1);
    if (cuts.length > 0) return decoded.slice(0, Math.min(...cuts));
  }
  return text;
}

describe('TextStream', () => {
  const samples = ['Hi 🙂 there 👨‍👩‍👧‍👦!', '日本語のテキスト。中文。', 'Café naïve 🇫🇷 ok', '𝄞 music 𝄢', 'plain ascii'];

  it('never emits part of a character, whatever the byte split', () => {
    const random = new SeededRandom(31);
    for (const text of samples) {
      for (let trial = 0; trial < 50; trial++) {
        const { pieces, rest } = streamOf(byteChunks(text, random, 1 + (trial % 6)), []);
        for (const piece of pieces) assert.doesNotMatch(piece, brokenCharacter);
        assert.equal(pieces.join('') + rest, text);
      }
    }
  });

  it('emits text before a stop string and nothing from it on, across pieces and false starts', () => {
    const chunks = ['Hello', ' there', '\nUs', 'ual', ' stuff', '\nUser', ': hi', ' more'].map((s) => encoder.encode(s));
    const stream = new TextStream((id) => chunks[id], ['User:']);
    assert.equal(stream.push(0), 'Hello');
    assert.equal(stream.push(1), ' there');
    assert.equal(stream.push(2), '\n', '"Us" may start "User:", so it waits');
    assert.equal(stream.push(3), 'Usual', 'the false start is released');
    assert.equal(stream.push(4), ' stuff');
    assert.equal(stream.push(5), '\n');
    assert.equal(stream.hasStopped, false);
    assert.equal(stream.push(6), '');
    assert.equal(stream.hasStopped, true);
    assert.equal(stream.push(7), '');
    assert.equal(stream.finish(), '');
  });

  it('matches the reference on random splits with several stop strings', () => {
    const random = new SeededRandom(32);
    const cases: [string, string[]][] = [
      ['Answer: yes 🙂 bye\nUser: next', ['User:', '🙂 bye']],
      ['aaab aab ab', ['aab', 'ab ']],
      ['x Usual User talk User: stop here', ['User:', '\n\n']],
      ['日本語のテキスト。中文。', ['。中']],
      ['no stop appears in this text', ['zzz', 'stop!']],
      ['abcd', ['abcd', 'c']],
    ];
    for (const [text, stop] of cases) {
      for (let trial = 0; trial < 40; trial++) {
        const chunks = byteChunks(text, random, 1 + (trial % 5));
        const expected = referenceStopOutput(text, chunks, stop);
        const stream = new TextStream((id) => chunks[id], stop);
        let emitted = '';
        for (let id = 0; id < chunks.length; id++) {
          emitted += stream.push(id);
          assert.ok(expected.startsWith(emitted), `${JSON.stringify(text)}: emitted ${JSON.stringify(emitted)} beyond ${JSON.stringify(expected)}`);
        }
        emitted += stream.finish();
        assert.equal(emitted, expected, JSON.stringify(text));
        assert.equal(stream.hasStopped, expected !== text);
      }
    }
  });

  it('finish() releases held-back text but not a trailing incomplete character', () => {
    const chunks = [encoder.encode('Hello'), encoder.encode(' Us')];
    const stream = new TextStream((id) => chunks[id], ['User:']);
    assert.equal(stream.push(0) + stream.push(1), 'Hello ');
    assert.equal(stream.finish(), 'Us');

    const emoji = encoder.encode('🙂');
    const cut = [encoder.encode('a'), emoji.subarray(0, 2)];
    const partial = new TextStream((id) => cut[id], []);
    assert.equal(partial.push(0) + partial.push(1) + partial.finish(), 'a');
  });
});

describe('fitPrompt', () => {
  const config = presetConfig('tiny'); // n_positions 128
  const spyLogger = () => {
    const records: { level: number; msg: string; promptTokens?: number; kept?: number }[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line)) });
    return { logger, records };
  };
  const ids = (length: number) => Array.from({ length }, (_, i) => (i * 7919) % 50000);

  it('starts an empty prompt from <|endoftext|>', () => {
    const { logger, records } = spyLogger();
    assert.deepEqual(fitPrompt([], 64, config, logger), [config.eos_token_id]);
    assert.equal(records.length, 0);
  });

  it('keeps a prompt that fits, untouched and without a warning', () => {
    const { logger, records } = spyLogger();
    assert.deepEqual(fitPrompt(ids(100), 28, config, logger), ids(100));
    assert.equal(records.length, 0);
  });

  it('cuts a long prompt from the left, keeping its end, and warns', () => {
    const cases: [number, number, number][] = [
      // [prompt length, maxNewTokens, tokens kept]
      [200, 64, 64], // 128 - 64
      [100, 100, 64], // at least half the context stays
      [300, 1, 127], // one position is left for the new token
      [110, 20, 108],
    ];
    for (const [length, maxNewTokens, kept] of cases) {
      const { logger, records } = spyLogger();
      const prompt = ids(length);
      assert.deepEqual(fitPrompt(prompt, maxNewTokens, config, logger), prompt.slice(length - kept), `${length} tokens, ${maxNewTokens} new`);
      assert.equal(records.length, 1);
      assert.equal(records[0].level, 40, 'a warning');
      assert.match(records[0].msg, /cut from the left/);
      assert.equal(records[0].promptTokens, length);
      assert.equal(records[0].kept, kept);
    }
  });
});
