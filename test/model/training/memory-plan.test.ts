import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parameterCount, presetConfig } from '../../../src/model/config.js';
import { ModelError } from '../../../src/model/errors.js';
import { checkBatchFits, trainingBytes } from '../../../src/model/training/memory-plan.js';

const GPT2 = presetConfig('gpt2');
const LORA = { rank: 8, alpha: 16 };

function refusal(run: () => void): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ModelError && error.code === 'OUT_OF_MEMORY', String(error));
    return error.message;
  }
  assert.fail('the batch was not refused');
}

describe('the memory plan of a fine-tuning run', () => {
  it('full fine-tuning holds 16 bytes per weight beside the process, and the larger of the gradient copies and the working set', () => {
    // One short row's working set is smaller than the gradients' copies (counted twice, 8 bytes a weight).
    assert.equal(trainingBytes(GPT2, undefined, { batchSize: 1, length: 16 }), 600 * 1024 ** 2 + 24 * parameterCount(GPT2));
    // Past that, each row adds the same.
    const [four, five, six] = [4, 5, 6].map((batchSize) => trainingBytes(GPT2, undefined, { batchSize, length: 256 }));
    assert.equal(six - five, five - four, 'linear in the rows');
    // bench:train measured up to 3.04 GiB at 4 x 64, 6.03 GiB at 4 x 256 and 8.09 GiB for 355M: the plan is above each, not far.
    const fourRows = trainingBytes(GPT2, undefined, { batchSize: 4, length: 64 });
    assert.ok(fourRows > 3.04 * 1024 ** 3 && fourRows < 3.5 * 1024 ** 3, `${fourRows}`);
    const longRows = trainingBytes(GPT2, undefined, { batchSize: 4, length: 256 });
    assert.ok(longRows > 6.03 * 1024 ** 3 && longRows < 7 * 1024 ** 3, `${longRows}`);
    const medium = trainingBytes(presetConfig('gpt2-medium'), undefined, { batchSize: 4, length: 64 });
    assert.ok(medium > 8.09 * 1024 ** 3 && medium < 9 * 1024 ** 3, `${medium}`);
  });

  it('LoRA holds the weights once and 12 bytes per adapter parameter besides the working set', () => {
    const shape = { batchSize: 4, length: 256 };
    const saved = trainingBytes(GPT2, undefined, shape) - trainingBytes(GPT2, LORA, shape);
    const adapters = GPT2.n_layer * ((768 * 8 + 8 * 2304) + (768 * 8 + 8 * 768) + (768 * 8 + 8 * 3072) + (3072 * 8 + 8 * 768));
    assert.equal(saved, 12 * (parameterCount(GPT2) - adapters));
  });

  it('counts the head\'s logits for the positions whose target counts only (FAQ rows: the answer\'s)', () => {
    const everyPosition = trainingBytes(GPT2, undefined, { batchSize: 8, length: 270 });
    const answersOnly = trainingBytes(GPT2, undefined, { batchSize: 8, length: 270, lossTokensPerRow: 45 });
    // 8 rows x 225 positions fewer, each with 6 floats of the 50257-wide vocabulary
    assert.equal(everyPosition - answersOnly, 8 * 225 * 4 * 6 * GPT2.vocab_size);
    assert.equal(trainingBytes(GPT2, undefined, { batchSize: 8, length: 270, lossTokensPerRow: 999 }), everyPosition, 'never more than every position');
    // and the refusal plans with them: a budget that 8 answer-only rows fit passes, while 8 rows counting everywhere would not
    checkBatchFits(GPT2, undefined, { batchSize: 8, length: 270, lossTokensPerRow: 45, accumulate: 1 }, answersOnly);
    const message = refusal(() => checkBatchFits(GPT2, undefined, { batchSize: 8, length: 270, accumulate: 1 }, answersOnly));
    assert.match(message, /the largest batch that fits is \d rows/);
  });

  it('longer rows cost more per token (attention), and more tokens cost more', () => {
    const perToken = (length: number) => (trainingBytes(GPT2, undefined, { batchSize: 2, length }) - trainingBytes(GPT2, undefined, { batchSize: 1, length })) / length;
    assert.ok(perToken(256) > perToken(64));
  });

  it('a batch within the budget passes; one over it names the largest that fits and the accumulation for the same step', () => {
    const shape = { batchSize: 16, length: 256, accumulate: 1 };
    checkBatchFits(GPT2, undefined, shape, trainingBytes(GPT2, undefined, shape));
    for (const budgetRows of [1, 3, 7, 15]) {
      const budget = trainingBytes(GPT2, undefined, { ...shape, batchSize: budgetRows }) + 1;
      const message = refusal(() => checkBatchFits(GPT2, undefined, shape, budget));
      const accumulate = Math.ceil(16 / budgetRows);
      assert.match(message, new RegExp(`the largest batch that fits is ${budgetRows} rows: use --batch ${budgetRows} --accumulate ${accumulate} `), message);
      assert.match(message, new RegExp(`${budgetRows * accumulate} rows per step as 16 now`), message);
    }
  });

  it('a budget below one row says so, and points at LoRA and shorter examples', () => {
    const shape = { batchSize: 4, length: 1024, accumulate: 2 };
    const message = refusal(() => checkBatchFits(GPT2, undefined, shape, 2 * 1024 ** 3));
    assert.match(message, /a batch of 4 rows of up to 1024 tokens needs about [\d.]+ GB to train, and 2\.0 GB is available; even one row does not fit/);
    assert.match(message, /--lora 8/);
  });
});
