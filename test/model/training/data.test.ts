import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ModelError } from '../../../src/model/errors.js';
import { loadTokenizer, writeGpt2TokenizerFiles, type Tokenizer } from '../../../src/model/files/tokenizer.js';
import {
  dataHash,
  epochBatches,
  makeBatch,
  readExamplesJsonl,
  splitRows,
  tokenizeExamples,
  type Example,
  type TrainingRow,
} from '../../../src/model/training/data.js';

const EOS = 50256;

function isDataError(pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof ModelError, `expected a ModelError, got ${String(error)}`);
    assert.equal(error.code, 'DATA_INVALID');
    assert.match(error.message, pattern);
    return true;
  };
}

describe('training data', () => {
  let dir: string;
  let tokenizer: Tokenizer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tunebot-training-data-'));
    await writeGpt2TokenizerFiles(dir, 128);
    tokenizer = await loadTokenizer(dir);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function jsonlFile(name: string, content: string | Buffer): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, content);
    return path;
  }

  describe('readExamplesJsonl', () => {
    it('reads one example per line, skipping blank lines, accepting a BOM and CRLF and ignoring other fields', async () => {
      const path = await jsonlFile(
        'good.jsonl',
        '\ufeff{"prompt": "Q: hours?\\nA:", "completion": " 9 to 5"}\r\n\r\n   \n{"completion": "é 👍", "prompt": "", "id": 7}\n',
      );
      assert.deepEqual(await readExamplesJsonl(path), [
        { prompt: 'Q: hours?\nA:', completion: ' 9 to 5' },
        { prompt: '', completion: 'é 👍' },
      ]);
    });

    const badLines: [string, string, RegExp][] = [
      ['not JSON', '{"prompt": "a", "completion": ', /line 3 is not valid JSON/],
      ['an array', '["a", "b"]', /line 3 must be a JSON object .* got an array/],
      ['null', 'null', /line 3 must be a JSON object .* got null/],
      ['a missing prompt', '{"completion": "b"}', /line 3 has no "prompt" field/],
      ['a missing completion', '{"prompt": "a"}', /line 3 has no "completion" field/],
      ['a non-string completion', '{"prompt": "a", "completion": 5}', /line 3: "completion" must be a string, got number/],
      ['a null prompt', '{"prompt": null, "completion": "b"}', /line 3: "prompt" must be a string, got null/],
      ['an empty completion', '{"prompt": "a", "completion": ""}', /line 3: "completion" is empty/],
    ];
    for (const [what, line, pattern] of badLines) {
      it(`names the file and the line of ${what}`, async () => {
        const path = await jsonlFile('bad.jsonl', `{"prompt": "a", "completion": "b"}\n\n${line}\n`);
        await assert.rejects(readExamplesJsonl(path), isDataError(new RegExp(`${path.replace(/[.\\/]/g, '\\$&')}: ${pattern.source}`)));
      });
    }

    it('rejects a file with no examples', async () => {
      await assert.rejects(readExamplesJsonl(await jsonlFile('empty.jsonl', '')), isDataError(/holds no examples/));
      await assert.rejects(readExamplesJsonl(await jsonlFile('blank.jsonl', '\n  \n\r\n')), isDataError(/holds no examples/));
    });

    it('rejects bytes that are not UTF-8, naming their line', async () => {
      const bytes = Buffer.concat([
        Buffer.from('{"prompt": "a", "completion": "b"}\n{"prompt": "caf'),
        Buffer.from([0xe9]), // Latin-1 é
        Buffer.from('", "completion": "b"}\n'),
      ]);
      await assert.rejects(readExamplesJsonl(await jsonlFile('latin1.jsonl', bytes)), isDataError(/line 2 is not valid UTF-8/));
    });

    it('refuses a file over 200 MB before reading it', async () => {
      const path = await jsonlFile('huge.jsonl', '');
      await truncate(path, 201 * 1024 * 1024); // sparse: no disk used, no time spent
      await assert.rejects(readExamplesJsonl(path), isDataError(/201\.0 MB, over the 200 MB limit/));
    });

    it('reports a missing file as DATA_INVALID', async () => {
      await assert.rejects(readExamplesJsonl(join(dir, 'absent.jsonl')), isDataError(/cannot read it \(ENOENT\)/));
    });
  });

  describe('dataHash', () => {
    it('is the SHA-256 of the examples, sensitive to order and to where the prompt ends', () => {
      const examples: Example[] = [
        { prompt: 'a', completion: 'bc' },
        { prompt: 'x', completion: 'y' },
      ];
      const hash = dataHash(examples);
      assert.match(hash, /^[0-9a-f]{64}$/);
      assert.equal(dataHash(examples.map((example) => ({ ...example }))), hash);
      assert.notEqual(dataHash([...examples].reverse()), hash);
      assert.notEqual(dataHash([{ prompt: 'ab', completion: 'c' }, examples[1]]), hash);
      assert.notEqual(dataHash([{ prompt: 'a', completion: 'bc\n' }, examples[1]]), hash);
    });
  });

  describe('tokenizeExamples', () => {
    const noWarnings = (message: string) => assert.fail(`unexpected warning: ${message}`);

    it('concatenates prompt, completion and eos, with the prompt length', () => {
      const example = { prompt: 'Q: When are you open?\nA:', completion: ' Nine to five, Monday to Friday.' };
      const [row] = tokenizeExamples([example], tokenizer.encode, EOS, 128, noWarnings);
      const prompt = tokenizer.encode(example.prompt);
      assert.deepEqual(row.ids, [...prompt, ...tokenizer.encode(example.completion), EOS]);
      assert.equal(row.promptLength, prompt.length);
      assert.equal(tokenizer.decode(row.ids), `${example.prompt}${example.completion}<|endoftext|>`);
    });

    it('starts an empty prompt with eos, as generation does, so the first completion token is learned', () => {
      const [row] = tokenizeExamples([{ prompt: '', completion: 'Hello' }], tokenizer.encode, EOS, 128, noWarnings);
      assert.deepEqual(row.ids, [EOS, ...tokenizer.encode('Hello'), EOS]);
      assert.equal(row.promptLength, 1);
    });

    it('fits contextLength + 1 ids, since the last id is only a target', () => {
      const completion = tokenizer.encode(' b c');
      const prompt = tokenizer.encode('a a a a');
      const exact = prompt.length + completion.length; // + eos = contextLength + 1 ids
      const [row] = tokenizeExamples([{ prompt: 'a a a a', completion: ' b c' }], tokenizer.encode, EOS, exact, noWarnings);
      assert.equal(row.ids.length, exact + 1);
    });

    it('cuts a long prompt from the left, keeping the whole completion and eos, and warns', () => {
      const prompt = 'one two three four five six seven eight nine ten';
      const completion = ' eleven twelve';
      const promptIds = tokenizer.encode(prompt);
      const completionIds = tokenizer.encode(completion);
      const warnings: string[] = [];
      const contextLength = completionIds.length + 3; // room for 3 prompt tokens (+1 id for the last target)
      const [row] = tokenizeExamples([{ prompt, completion }], tokenizer.encode, EOS, contextLength, (m) => warnings.push(m));
      assert.deepEqual(row.ids, [...promptIds.slice(-3), ...completionIds, EOS]);
      assert.equal(row.promptLength, 3);
      assert.equal(row.ids.length, contextLength + 1);
      assert.deepEqual(warnings, [
        `example 1 has a ${promptIds.length}-token prompt and a ${completionIds.length}-token completion, over the context length ${contextLength}: dropped the first ${promptIds.length - 3} prompt tokens`,
      ]);
    });

    it('cuts a completion that alone overflows from its end, dropping eos but keeping one prompt token', () => {
      const completion = ' alpha beta gamma delta epsilon zeta eta theta';
      const completionIds = tokenizer.encode(completion);
      const warnings: string[] = [];
      const [row] = tokenizeExamples([{ prompt: 'Greek: x y', completion }], tokenizer.encode, EOS, 4, (m) => warnings.push(m));
      assert.deepEqual(row.ids, [tokenizer.encode('Greek: x y').at(-1), ...completionIds.slice(0, 4)]);
      assert.equal(row.promptLength, 1);
      assert.ok(!row.ids.slice(1).includes(EOS));
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /dropped the first \d+ prompt tokens and the last \d+ completion tokens and the end-of-text/);
    });

    it('keeps a completion token as a target even with a context of one', () => {
      const [row] = tokenizeExamples([{ prompt: 'long prompt here', completion: ' long completion here' }], tokenizer.encode, EOS, 1, () => {});
      assert.equal(row.ids.length, 2);
      assert.equal(row.promptLength, 1);
      assert.equal(row.ids[1], tokenizer.encode(' long completion here')[0]);
    });

    it('reports the first ten cut examples one by one and the total at the end', () => {
      const examples = Array.from({ length: 13 }, () => ({ prompt: 'a b c d e f g h', completion: ' i' }));
      const warnings: string[] = [];
      tokenizeExamples(examples, tokenizer.encode, EOS, 4, (m) => warnings.push(m));
      assert.equal(warnings.length, 11);
      assert.match(warnings[9], /^example 10 has/);
      assert.equal(warnings[10], '13 of 13 examples were over the context length 4 and were cut');
    });

    it('rejects a context length below one', () => {
      assert.throws(
        () => tokenizeExamples([{ prompt: 'a', completion: 'b' }], tokenizer.encode, EOS, 0, noWarnings),
        (error: unknown) => error instanceof ModelError && error.code === 'OPTIONS_INVALID',
      );
    });
  });

  describe('makeBatch', () => {
    it('feeds ids without the last, targets the ids without the first, and right-pads with eos', () => {
      const rows: TrainingRow[] = [
        { ids: [10, 11, 12, 13, 14], promptLength: 2 },
        { ids: [20, 21, 22], promptLength: 1 },
      ];
      const batch = makeBatch(rows, EOS);
      assert.equal(batch.batchSize, 2);
      assert.equal(batch.length, 4);
      const eos = BigInt(EOS);
      assert.deepEqual([...batch.inputIds], [10n, 11n, 12n, 13n, 20n, 21n, eos, eos]);
      assert.deepEqual([...batch.attentionMask], [1n, 1n, 1n, 1n, 1n, 1n, 0n, 0n]);
      assert.deepEqual([...batch.targets], [11n, 12n, 13n, 14n, 21n, 22n, 0n, 0n]);
      // Row 0: the target at t is ids[t + 1]; ids[2..] are the completion, so t >= 1 counts.
      assert.deepEqual([...batch.lossMask], [0, 1, 1, 1, 1, 1, 0, 0]);
      assert.equal(batch.tokens, 6);
      assert.equal(batch.lossTokens, 5);
    });

    it('masks exactly the completion and eos targets of a tokenized example', () => {
      const example = { prompt: 'Q: refund?\nA:', completion: ' Within 30 days.' };
      const rows = tokenizeExamples([example], tokenizer.encode, EOS, 128, () => {});
      const batch = makeBatch(rows, EOS);
      const learned = [...batch.targets].filter((_, t) => batch.lossMask[t] === 1).map(Number);
      assert.equal(tokenizer.decode(learned), ' Within 30 days.<|endoftext|>');
      assert.deepEqual([...batch.inputIds].map(Number), rows[0].ids.slice(0, -1));
    });

    it('rejects rows that cannot train', () => {
      assert.throws(() => makeBatch([], EOS), isDataError(/at least one row/));
      assert.throws(() => makeBatch([{ ids: [5], promptLength: 0 }], EOS), isDataError(/row 0 has 1 ids/));
      assert.throws(() => makeBatch([{ ids: [5, 6], promptLength: 2 }], EOS), isDataError(/promptLength 2/));
      assert.throws(() => makeBatch([{ ids: [5, -1], promptLength: 1 }], EOS), isDataError(/token id -1/));
    });
  });

  describe('splitRows', () => {
    const rows = Array.from({ length: 20 }, (_, i) => i);

    it('splits a seeded shuffle into a partition of the rows, the same for the same seed', () => {
      const { train, validation } = splitRows(rows, 0.25, 42);
      assert.equal(validation.length, 5);
      assert.deepEqual([...train, ...validation].sort((a, b) => a - b), rows);
      assert.deepEqual(splitRows(rows, 0.25, 42), { train, validation });
      assert.notDeepEqual(splitRows(rows, 0.25, 43).validation, validation);
      assert.notDeepEqual(validation, rows.slice(0, 5), 'the validation rows are drawn from the whole set');
    });

    it('keeps at least one validation row when asked for any, and never takes them all', () => {
      assert.equal(splitRows(rows, 0.01, 1).validation.length, 1);
      assert.equal(splitRows([1, 2], 0.9, 1).validation.length, 1);
      assert.equal(splitRows([1, 2], 0.9, 1).train.length, 1);
      assert.deepEqual(splitRows([1], 0.5, 1), { train: [1], validation: [] });
      assert.equal(splitRows(rows, 0, 1).validation.length, 0);
    });

    it('rejects a fraction outside [0, 1) and a non-integer seed', () => {
      for (const fraction of [-0.1, 1, Number.NaN]) {
        assert.throws(() => splitRows(rows, fraction, 1), (error: unknown) => error instanceof ModelError && error.code === 'OPTIONS_INVALID');
      }
      assert.throws(() => splitRows(rows, 0.1, 1.5), /seed must be an integer/);
    });
  });

  describe('epochBatches', () => {
    const rows: TrainingRow[] = Array.from({ length: 10 }, (_, i) => ({ ids: Array.from({ length: 2 + (i % 4) }, () => i), promptLength: 1 }));
    const firstIds = (batches: ReturnType<typeof epochBatches>) =>
      batches.flatMap((batch) => Array.from({ length: batch.batchSize }, (_, b) => Number(batch.inputIds[b * batch.length])));

    it('covers every row once, in batches of batchSize with the remainder last', () => {
      const batches = epochBatches(rows, 4, 7, 0, EOS);
      assert.deepEqual(batches.map((batch) => batch.batchSize), [4, 4, 2]);
      assert.deepEqual(firstIds(batches).sort((a, b) => a - b), rows.map((_, i) => i));
      for (const batch of batches) {
        const longest = Math.max(...firstIds([batch]).map((i) => rows[i].ids.length));
        assert.equal(batch.length, longest - 1);
      }
    });

    it('gives the same order for the same seed and epoch, another for another epoch or seed', () => {
      const order = firstIds(epochBatches(rows, 3, 7, 0, EOS));
      assert.deepEqual(firstIds(epochBatches(rows, 3, 7, 0, EOS)), order);
      assert.notDeepEqual(firstIds(epochBatches(rows, 3, 7, 1, EOS)), order);
      assert.notDeepEqual(firstIds(epochBatches(rows, 3, 8, 0, EOS)), order);
    });

    it('rejects a batch size below one and a negative epoch', () => {
      assert.throws(() => epochBatches(rows, 0, 1, 0, EOS), /batchSize must be a positive integer/);
      assert.throws(() => epochBatches(rows, 2, 1, -1, EOS), /epoch must be a non-negative integer/);
    });
  });
});
