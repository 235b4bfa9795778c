import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  type PreTrainedModel,
  type PreTrainedTokenizer,
  type Tensor,
  type TextGenerationPipeline,
  env,
  pipeline,
} from '@huggingface/transformers';
import { presetConfig } from '../../src/model/config.js';
import { Gpt2Decoder } from '../../src/model/runtime/decoder.js';
import { buildGpt2Graph } from '../../src/model/gpt2-graph.js';
import { LanguageModel } from '../../src/model/runtime/language-model.js';
import { initModel, saveModel } from '../../src/model/files/model-dir.js';
import { defaultGenerationConfig, readModelDir } from '../../src/model/files/model-files.js';
import { encodeModel } from '../../src/model/onnx/encode.js';
import { type ModelSession, createModelSession } from '../../src/model/runtime/session.js';
import { type Tokenizer, loadTokenizer } from '../../src/model/files/tokenizer.js';
import { initWeights } from '../../src/model/files/weights.js';
import { silentLogger } from '../../src/log.js';

/**
 * Transformers.js must load a model directory exactly as we write it (config.json,
 * generation_config.json, tokenizer files, onnx/model.onnx) and continue a prompt the way our
 * own runtime does. It runs the export graph with its own feeds (position ids from the attention
 * mask, an empty past, left padding); we run the runtime graph through our decoder and scheduler.
 */

const NEW_TOKENS = 20;
const PROMPTS = ['The quick brown fox', 'How do I reset my password?', 'Grüße aus Köln 🎉 und', '日本語のテキストを'];
// Both graphs compute the same float32 math in a different operator order.
const LOGIT_TOLERANCE = 1e-4;

/**
 * A freshly initialized GPT-2 maps every token to itself (the tied head sees little but the
 * input embedding) and greedy decoding repeats the prompt's last word. Stronger attention, MLP
 * and position weights make the continuation depend on the whole prompt and on position.
 */
async function writeVariedModel(dir: string): Promise<void> {
  const config = presetConfig('tiny');
  const weights = initWeights(config, 7);
  for (const [name, tensor] of weights) {
    if (!/^h\.\d+\.(attn|mlp)\.\w+\.weight$|^wpe\.weight$/.test(name)) continue;
    for (let i = 0; i < tensor.data.length; i++) tensor.data[i] *= 8;
  }
  await saveModel(dir, { config, weights, generationConfig: defaultGenerationConfig(config) });
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** Row `row` of a [B, T] int64 tensor, as numbers. */
function idsRow(tensor: Tensor, row: number): number[] {
  const width = tensor.dims[1];
  return Array.from((tensor.data as BigInt64Array).subarray(row * width, (row + 1) * width), Number);
}

/** Our greedy continuation, id by id, from the runtime graph the worker runs. */
async function ourGreedyIds(decoder: Gpt2Decoder, promptIds: readonly number[], count: number): Promise<number[]> {
  const { logits, cache } = await decoder.prefill(promptIds);
  const ids = [argmax(logits)];
  while (ids.length < count) {
    const [{ logits: row }] = await decoder.forward(cache, [[ids[ids.length - 1]]]);
    ids.push(argmax(row as Float32Array));
  }
  return ids;
}

describe('Transformers.js reads our model directory unchanged', () => {
  const savedEnv = { ...env };
  const fetchAttempts: string[] = [];
  let root: string;
  let variedDir: string;
  let ours: LanguageModel;
  let tokenizer: Tokenizer;
  let session: ModelSession;
  let decoder: Gpt2Decoder;
  let theirTokenizer: PreTrainedTokenizer;
  let theirModel: PreTrainedModel;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-transformers-compat-'));
    variedDir = join(root, 'varied');
    await writeVariedModel(variedDir);
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = root;
    // No network here; a fetch would mean Transformers.js looked beyond the folder.
    env.fetch = async (input: string | URL) => {
      fetchAttempts.push(String(input));
      throw new Error(`Transformers.js tried to fetch ${String(input)}`);
    };
    ours = await LanguageModel.load(variedDir, { executionProvider: 'cpu', logLevel: 'silent' });
    const files = await readModelDir(variedDir);
    tokenizer = await loadTokenizer(variedDir, files.config.vocab_size);
    session = await createModelSession(encodeModel(buildGpt2Graph(files.config, files.weights, 'runtime')), {
      executionProvider: 'cpu',
      logger: silentLogger,
    });
    decoder = new Gpt2Decoder(session, files.config);
    theirTokenizer = await AutoTokenizer.from_pretrained('varied');
    theirModel = await AutoModelForCausalLM.from_pretrained('varied', { dtype: 'fp32', device: 'cpu' });
  });

  after(async () => {
    await theirModel?.dispose();
    await session?.release();
    await ours?.close();
    Object.assign(env, savedEnv);
    await rm(root, { recursive: true, force: true });
    assert.deepEqual(fetchAttempts, []);
  });

  it('the text-generation pipeline continues each prompt greedily with our text', async () => {
    const generator = (await pipeline('text-generation', 'varied', { dtype: 'fp32', device: 'cpu' })) as TextGenerationPipeline;
    try {
      for (const prompt of PROMPTS) {
        const [theirs] = (await generator(prompt, { max_new_tokens: NEW_TOKENS, do_sample: false, return_full_text: false })) as {
          generated_text: string;
        }[];
        const { text, result } = await ours.complete(prompt, { greedy: true, maxNewTokens: NEW_TOKENS });
        assert.equal(text, theirs.generated_text, `prompt ${JSON.stringify(prompt)}`);
        assert.equal(result.finishReason, 'length');
        assert.equal(result.generatedTokens, NEW_TOKENS);
      }
    } finally {
      await generator.dispose();
    }
  });

  it('generate() on a left-padded batch gives each row the ids of our decoder and the text of our batched model', async () => {
    theirTokenizer.padding_side = 'left';
    const inputs = theirTokenizer(PROMPTS, { padding: true, add_special_tokens: false });
    const output = (await theirModel.generate({ ...inputs, max_new_tokens: NEW_TOKENS, do_sample: false })) as Tensor;
    const promptWidth = inputs.input_ids.dims[1];
    assert.deepEqual(output.dims, [PROMPTS.length, promptWidth + NEW_TOKENS]);

    // Our scheduler decodes concurrent requests in one batch, with its own padding of the cache.
    const ourTexts = await Promise.all(PROMPTS.map((prompt) => ours.complete(prompt, { greedy: true, maxNewTokens: NEW_TOKENS })));
    for (const [row, prompt] of PROMPTS.entries()) {
      const promptIds = tokenizer.encode(prompt);
      const paddedPrompt = idsRow(inputs.input_ids, row).slice(0, promptWidth);
      const padding = promptWidth - promptIds.length;
      assert.deepEqual(paddedPrompt, [...Array<number>(padding).fill(tokenizer.eosTokenId), ...promptIds], 'left padding');

      const theirIds = idsRow(output, row).slice(promptWidth);
      assert.deepEqual(await ourGreedyIds(decoder, promptIds, NEW_TOKENS), theirIds, `ids for ${JSON.stringify(prompt)}`);
      assert.equal(ourTexts[row].text, tokenizer.decode(theirIds), `text for ${JSON.stringify(prompt)}`);
    }
  });

  it('one forward pass gives the logits of our runtime graph at every position', async () => {
    const promptIds = tokenizer.encode(PROMPTS[2]);
    const inputs = theirTokenizer(PROMPTS[2], { add_special_tokens: false });
    assert.deepEqual(idsRow(inputs.input_ids, 0), promptIds);
    const { logits } = (await theirModel(inputs)) as { logits: Tensor };
    const vocab = tokenizer.vocabSize;
    assert.deepEqual(logits.dims, [1, promptIds.length, vocab]);
    const theirLogits = logits.data as Float32Array;
    for (let length = 1; length <= promptIds.length; length++) {
      const { logits: ourRow } = await decoder.prefill(promptIds.slice(0, length));
      const theirRow = theirLogits.subarray((length - 1) * vocab, length * vocab);
      const difference = maxAbsDifference(ourRow, theirRow);
      assert.ok(difference < LOGIT_TOLERANCE, `position ${length - 1}: logits differ by ${difference}`);
      assert.equal(argmax(ourRow), argmax(theirRow));
    }
  });

  it('a directory made by initModel loads and generates as ours does', async () => {
    const dir = join(root, 'initialized');
    await initModel(dir, 'tiny', 11);
    const generator = (await pipeline('text-generation', 'initialized', { dtype: 'fp32', device: 'cpu' })) as TextGenerationPipeline;
    const initialized = await LanguageModel.load(dir, { executionProvider: 'cpu', logLevel: 'silent' });
    try {
      const [theirs] = (await generator(PROMPTS[0], { max_new_tokens: NEW_TOKENS, do_sample: false, return_full_text: false })) as {
        generated_text: string;
      }[];
      const { text } = await initialized.complete(PROMPTS[0], { greedy: true, maxNewTokens: NEW_TOKENS });
      assert.equal(text, theirs.generated_text);
    } finally {
      await initialized.close();
      await generator.dispose();
    }
  });
});
