import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AutoTokenizer, type PreTrainedTokenizer, env } from '@huggingface/transformers';
import { SentenceEmbedder } from '../../../src/model/embedding/sentence-embedder.js';
import { readSafetensors } from '../../../src/model/files/safetensors.js';
import type { WeightMap } from '../../../src/model/tensor.js';
import { rejectsWithModelError } from '../../helpers/model-errors.js';
import { type TinyBert, writeTinyBert } from '../../helpers/tiny-bert/tiny-bert-folder.js';
import { referenceBertForward, referenceMeanPooled } from '../../reference/bert-reference.js';

// float32 model and pooling against float64 loops; unit vectors, so this bounds the cosine's
// error too. Measured at most 1.4e-7.
const VECTOR_TOLERANCE = 1e-6;

const TEXTS = ['How do I reset my passwords?', 'hello', 'Can I change the email of my account, please?', 'Résumé 你好', ''];

function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

describe('SentenceEmbedder on the tiny BERT', () => {
  const savedFetch = env.fetch;
  const fetchAttempts: string[] = [];
  let root: string;
  let bert: TinyBert;
  let weights: WeightMap;
  let tokenizer: PreTrainedTokenizer;
  let embedder: SentenceEmbedder;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-embedder-'));
    env.fetch = async (input: string | URL) => {
      fetchAttempts.push(String(input));
      throw new Error(`Transformers.js tried to fetch ${String(input)}`);
    };
    bert = await writeTinyBert(join(root, 'bert'), { seed: 5, shape: { initializer_range: 0.3 } });
    weights = (await readSafetensors(join(bert.dir, 'model.safetensors'))).tensors;
    tokenizer = await AutoTokenizer.from_pretrained(bert.dir, { local_files_only: true });
    embedder = await SentenceEmbedder.load(bert.dir, { intraOpThreads: 1 });
  });
  after(async () => {
    await embedder?.close();
    env.fetch = savedFetch;
    await rm(root, { recursive: true, force: true });
    assert.deepEqual(fetchAttempts, []);
  });

  /** The reference's sentence vector, for ids as the tokenizer gives them (mask all ones). */
  const referenceVector = (ids: number[], pooling: 'mean' | 'cls' = 'mean'): Float64Array => {
    const ones = ids.map(() => 1);
    const hidden = referenceBertForward(bert.config, weights, ids, ids.map(() => 0), ones);
    if (pooling === 'mean') return referenceMeanPooled(hidden, ones);
    const norm = Math.hypot(...hidden[0]);
    return hidden[0].map((v) => v / norm);
  };
  const idsOf = (text: string): number[] => (tokenizer(text).input_ids.tolist() as bigint[][])[0].map(Number);

  it('tokenizes with the WordPiece tokenizer.json as BERT would: lower case, accents stripped, ## pieces, [CLS] and [SEP]', () => {
    const id = (token: string) => bert.vocab.get(token) as number;
    assert.deepEqual(idsOf('How do I reset my passwords?'), ['[CLS]', 'how', 'do', 'i', 'reset', 'my', 'password', '##s', '?', '[SEP]'].map(id));
    assert.deepEqual(idsOf('Résumé 你好'), ['[CLS]', 'r', '##e', '##s', '##u', '##m', '##e', '[UNK]', '[UNK]', '[SEP]'].map(id));
    assert.deepEqual(idsOf(''), ['[CLS]', '[SEP]'].map(id));
  });

  it('knows its dimension and pooling from the folder', () => {
    assert.equal(embedder.dimension, bert.config.hidden_size);
    assert.equal(embedder.pooling, 'mean');
  });

  it('gives each text of a padded batch the float64 reference model\'s mean-pooled unit vector', async () => {
    const vectors = await embedder.embed(TEXTS);
    assert.equal(vectors.length, TEXTS.length);
    for (const [i, text] of TEXTS.entries()) {
      assert.ok(Math.abs(Math.hypot(...vectors[i]) - 1) < 1e-6, `${JSON.stringify(text)} is not unit length`);
      const difference = maxAbsDifference(vectors[i], referenceVector(idsOf(text)));
      assert.ok(difference < VECTOR_TOLERANCE, `${JSON.stringify(text)}: max |embedder - reference| = ${difference}`);
    }
  });

  it('gives a text the same vector alone, in any batch, and with any batch size', async () => {
    const together = await embedder.embed(TEXTS);
    const small = await SentenceEmbedder.load(bert.dir, { batchSize: 2, intraOpThreads: 1 });
    try {
      const inPairs = await small.embed([...TEXTS].reverse());
      for (const [i, text] of TEXTS.entries()) {
        const [alone] = await embedder.embed([text]);
        assert.ok(maxAbsDifference(alone, together[i]) < 1e-6, `${JSON.stringify(text)} alone vs in the batch`);
        assert.ok(maxAbsDifference(inPairs[TEXTS.length - 1 - i], together[i]) < 1e-6, `${JSON.stringify(text)} with batch size 2`);
      }
    } finally {
      await small.close();
    }
    assert.deepEqual(await embedder.embed([]), []);
  });

  it('pools by the [CLS] vector when 1_Pooling/config.json says so', async () => {
    const clsBert = await writeTinyBert(join(root, 'cls'), { seed: 5, shape: { initializer_range: 0.3 }, pooling: 'cls' });
    const cls = await SentenceEmbedder.load(clsBert.dir, { intraOpThreads: 1 });
    try {
      assert.equal(cls.pooling, 'cls');
      const [vector] = await cls.embed([TEXTS[2]]);
      const difference = maxAbsDifference(vector, referenceVector(idsOf(TEXTS[2]), 'cls'));
      assert.ok(difference < VECTOR_TOLERANCE, `max |embedder - reference| = ${difference}`);
    } finally {
      await cls.close();
    }
  });

  it('refuses a missing folder, missing files, an unknown pooling and a broken graph with coded errors', async () => {
    const missing = join(root, 'nowhere');
    await rejectsWithModelError(SentenceEmbedder.load(missing), 'MODEL_NOT_FOUND', /no sentence-embedding model at .*nowhere; pull one with `tunebot model pull sentence-transformers\/all-MiniLM-L6-v2 --embedding/);

    const noGraph = join(root, 'no-graph');
    await cp(bert.dir, noGraph, { recursive: true });
    await rm(join(noGraph, 'onnx'), { recursive: true });
    await rm(join(noGraph, 'tokenizer.json'));
    await rejectsWithModelError(SentenceEmbedder.load(noGraph), 'MODEL_CORRUPT', /lacks tokenizer\.json, onnx\/model\.onnx/);

    const maxPooling = await writeTinyBert(join(root, 'max'), { pooling: 'max' });
    await rejectsWithModelError(SentenceEmbedder.load(maxPooling.dir), 'CONFIG_INVALID', /asks for pooling_mode_max_tokens; the embedder pools by/);

    const brokenGraph = join(root, 'broken');
    await cp(bert.dir, brokenGraph, { recursive: true });
    await writeFile(join(brokenGraph, 'onnx', 'model.onnx'), 'not a protobuf');
    await rejectsWithModelError(SentenceEmbedder.load(brokenGraph), 'MODEL_CORRUPT', /cannot load the sentence-embedding model in .*broken/);

    await rejectsWithModelError(SentenceEmbedder.load(bert.dir, { batchSize: 0 }), 'OPTIONS_INVALID', /batchSize must be a whole number >= 1, got 0/);
  });

  it('refuses to embed once closed', async () => {
    const closing = await SentenceEmbedder.load(bert.dir, { intraOpThreads: 1 });
    await closing.close();
    await rejectsWithModelError(closing.embed(['hello']), 'CANCELLED', /is closed/);
  });
});
