import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { type TextEmbedder, SentenceEmbedder } from '../../src/model/embedding/sentence-embedder.js';
import { calibrateFromIndex, calibratedSimilarity } from '../../src/core/retrieval/dense-calibration.js';
import { DenseIndex } from '../../src/core/retrieval/dense-index.js';
import { HybridRetriever, type LexicalHit } from '../../src/core/retrieval/hybrid-retriever.js';
import { openRetrieval } from '../../src/core/retrieval/open-retrieval.js';
import { loadConfig } from '../../src/core/config.js';
import { captureLogger } from '../helpers/capture-logger.js';
import { rejectsWithModelError } from '../helpers/model-errors.js';
import { writeTinyBert } from '../helpers/tiny-bert/tiny-bert-folder.js';

interface Entry {
  id: string;
  question: string;
  alternates: string[];
  answer: string;
}

const ENTRIES: Entry[] = [
  { id: 'q1', question: 'How do I reset my password?', alternates: ['I forgot my password'], answer: 'Use the reset link.' },
  { id: 'q2', question: 'What are your opening hours?', alternates: [], answer: '9 to 5.' },
  { id: 'q3', question: 'How do I cancel my subscription?', alternates: ['stop my plan', 'cancel billing'], answer: 'Settings, then Plan.' },
  { id: 'q4', question: 'Can I change the email of my account?', alternates: [], answer: 'Yes, in your profile.' },
];

/** BM25-like hits: a score of ten times the confidence, and the phrasing that matched (default the question). */
const lexicalHits = (hits: [id: string, confidence: number, phrasing?: number][]): LexicalHit<Entry>[] =>
  hits.map(([id, confidence, phrasing = 0]) => ({ entry: ENTRIES.find((entry) => entry.id === id) as Entry, confidence, score: 10 * confidence, phrasing }));

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

/** The real embedder, counting the texts it is asked to embed. */
class CountingEmbedder implements TextEmbedder {
  texts: string[] = [];
  constructor(private readonly inner: TextEmbedder) {}
  get dimension(): number {
    return this.inner.dimension;
  }
  embed(texts: readonly string[]): Promise<Float32Array[]> {
    this.texts.push(...texts);
    return this.inner.embed(texts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('HybridRetriever with the tiny BERT', () => {
  let root: string;
  let modelDir: string;
  let embedder: SentenceEmbedder;

  /** Each entry's phrasing vectors and the query's, straight from the embedder. */
  const embedAll = async (query: string, entries: readonly Entry[]) => {
    const [queryVector] = await embedder.embed([query]);
    const phrasingVectors = await Promise.all(entries.map((entry) => embedder.embed([entry.question, ...entry.alternates])));
    return { queryVector, phrasingVectors };
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-hybrid-'));
    modelDir = (await writeTinyBert(join(root, 'bert'), { seed: 2, shape: { initializer_range: 0.3 } })).dir;
    embedder = await SentenceEmbedder.load(modelDir, { intraOpThreads: 1 });
  });
  after(async () => {
    await embedder?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('orders by 1 / (5 + BM25 place) + 1 / (5 + cosine place), k at most, each hit scored by its fused confidence 1 - sqrt((1 - l)(1 - d))', async () => {
    // unrelated 0, paraphrase 1: the dense confidence is the cosine itself (clamped at 0).
    const retriever = new HybridRetriever(embedder, { calibration: { unrelated: 0, paraphrase: 1 }, logger: silentLogger });
    const query = 'reset password please';
    const lexical = lexicalHits([
      ['q1', 0.7, 1],
      ['q4', 0.1],
    ]);
    const hits = await retriever.search(query, ENTRIES, lexical, 3);

    const { queryVector, phrasingVectors } = await embedAll(query, ENTRIES);
    const expected = ENTRIES.map((entry, i) => {
      const similarity = Math.max(...phrasingVectors[i].map((vector) => dot(queryVector, vector)));
      const l = lexical.find((hit) => hit.entry.id === entry.id)?.confidence ?? 0;
      const d = Math.max(0, similarity);
      const closest = phrasingVectors[i].findIndex((vector) => dot(queryVector, vector) === similarity);
      const phrasing = lexical.find((hit) => hit.entry.id === entry.id)?.phrasing ?? closest;
      return { id: entry.id, similarity, lexical: l, dense: d, confidence: 1 - Math.sqrt((1 - l) * (1 - d)), phrasing };
    });
    const byCosine = [...expected].sort((a, b) => b.similarity - a.similarity);
    const rankScore = (id: string) => {
      const lexicalPlace = lexical.findIndex((hit) => hit.entry.id === id) + 1;
      return (lexicalPlace > 0 ? 1 / (5 + lexicalPlace) : 0) + 1 / (5 + byCosine.findIndex((hit) => hit.id === id) + 1);
    };
    expected.sort((a, b) => rankScore(b.id) - rankScore(a.id) || b.confidence - a.confidence);

    assert.deepEqual(
      hits.map((hit) => hit.entry.id),
      expected.slice(0, 3).map((hit) => hit.id),
    );
    for (const [i, hit] of hits.entries()) {
      const want = expected[i];
      assert.equal(hit.lexical, want.lexical);
      assert.equal(hit.phrasing, want.phrasing, `${hit.entry.id}: BM25's phrasing when it listed the entry, else the closest`);
      assert.equal(hit.score, hit.confidence);
      for (const field of ['similarity', 'dense', 'confidence'] as const) {
        assert.ok(Math.abs((hit[field] as number) - want[field]) < 1e-6, `${hit.entry.id} ${field}: ${hit[field]}, expected ${want[field]}`);
      }
    }
  });

  it('finds an entry BM25 missed through one of its alternates', async () => {
    const retriever = new HybridRetriever(embedder, { calibration: { unrelated: 0, paraphrase: 1 }, logger: silentLogger });
    const [best] = await retriever.search('stop my plan', ENTRIES, [], 1);
    assert.equal(best.entry.id, 'q3');
    assert.equal(best.phrasing, 1, 'its first alternate');
    assert.equal(best.lexical, 0);
    assert.ok(Math.abs((best.similarity as number) - 1) < 1e-6 && best.confidence > 0.999, `similarity ${best.similarity}, confidence ${best.confidence}`);
  });

  it('calibrates on the FAQ itself unless told otherwise', async () => {
    const retriever = new HybridRetriever(embedder, { logger: silentLogger });
    const query = 'when are you open';
    const hits = await retriever.search(query, ENTRIES, [], ENTRIES.length);
    const { queryVector, phrasingVectors } = await embedAll(query, ENTRIES);
    const calibration = calibrateFromIndex(new DenseIndex(ENTRIES.map((entry, i) => ({ id: entry.id, vectors: phrasingVectors[i] }))));
    for (const hit of hits) {
      const i = ENTRIES.indexOf(hit.entry);
      const similarity = Math.max(...phrasingVectors[i].map((vector) => dot(queryVector, vector)));
      const want = calibratedSimilarity(similarity, calibration);
      assert.ok(Math.abs((hit.dense as number) - want) < 1e-6, `${hit.entry.id}: dense ${hit.dense}, expected ${want}`);
    }
  });

  it('embeds each phrasing once: a repeated search embeds the query alone, an edit embeds what changed, concurrent searches share a build', async () => {
    const counting = new CountingEmbedder(embedder);
    const retriever = new HybridRetriever(counting, { logger: silentLogger });
    await retriever.search('password', ENTRIES, [], 2);
    assert.equal(counting.texts.length, 7 + 1, 'seven phrasings and the query');
    counting.texts = [];
    await retriever.search('hours', ENTRIES, [], 2);
    assert.deepEqual(counting.texts, ['hours']);

    counting.texts = [];
    const edited: Entry[] = [
      ...ENTRIES.slice(0, 3),
      { ...ENTRIES[3], question: 'How do I change my email address?' },
      { id: 'q5', question: 'Do you ship abroad?', alternates: [], answer: 'Yes.' },
    ];
    await Promise.all([retriever.search('ship', edited, [], 2), retriever.search('email', edited, [], 2)]);
    assert.deepEqual([...counting.texts].sort(), ['Do you ship abroad?', 'How do I change my email address?', 'email', 'ship']);
  });

  it('answers from BM25 alone, logged, when embedding fails', async () => {
    const { logger, records } = captureLogger();
    const failing = new HybridRetriever(await SentenceEmbedder.load(modelDir, { intraOpThreads: 1 }), { logger });
    await failing.close();
    const lexical = lexicalHits([
      ['q2', 0.9],
      ['q1', 0.4, 1],
      ['q3', 0.2],
    ]);
    for (let attempt = 0; attempt < 2; attempt++) {
      const hits = await failing.search('opening hours', ENTRIES, lexical, 2);
      assert.deepEqual(
        hits.map((hit) => [hit.entry.id, hit.confidence, hit.score, hit.phrasing, hit.lexical, hit.dense, hit.similarity]),
        [
          ['q2', 0.9, 9, 0, 0.9, null, null],
          ['q1', 0.4, 4, 1, 0.4, null, null],
        ],
      );
    }
    const warnings = records.filter((record) => record.msg === 'dense retrieval failed; answering from BM25 alone');
    assert.equal(warnings.length, 2);
    assert.match(JSON.stringify(warnings[0].err), /is closed/);
  });

  it('returns nothing for an empty FAQ or k = 0 and refuses a bad k', async () => {
    const counting = new CountingEmbedder(embedder);
    const retriever = new HybridRetriever(counting, { logger: silentLogger });
    assert.deepEqual(await retriever.search('anything', [], [], 3), []);
    assert.deepEqual(counting.texts, []);
    assert.deepEqual(await retriever.search('anything', ENTRIES, [], 0), []);
    await assert.rejects(retriever.search('anything', ENTRIES, [], 1.5), /k must be a whole number >= 0, got 1\.5/);
  });
});

describe('openRetrieval', () => {
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-open-retrieval-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const configWith = (embeddingModel: string | null) => ({ ...loadConfig({ TUNEBOT_MODEL_INTRA_OP_THREADS: '1' }), retrieval: { embeddingModel } });

  it('is BM25 alone, and says so, without an embedding model or when its folder is missing', async () => {
    const { logger, records } = captureLogger();
    assert.equal(await openRetrieval(configWith(null), logger), null);
    assert.equal(await openRetrieval(configWith(join(root, 'missing')), logger), null);
    assert.deepEqual(
      records.map((record) => [record.retrieval, record.msg]),
      [
        ['lexical', 'retrieval: BM25 (no retrieval.embeddingModel)'],
        ['lexical', 'retrieval: BM25 alone, retrieval.embeddingModel names no folder; pull one with `tunebot model pull sentence-transformers/all-MiniLM-L6-v2 --embedding`'],
      ],
    );
  });

  it('is hybrid, and says so, when the folder holds a model', async () => {
    const dir = (await writeTinyBert(join(root, 'bert'))).dir;
    const { logger, records } = captureLogger();
    const retriever = await openRetrieval(configWith(dir), logger);
    try {
      assert.ok(retriever instanceof HybridRetriever);
      assert.equal(retriever.dimension, 32);
      const [record] = records.filter((line) => line.retrieval === 'hybrid');
      assert.deepEqual([record.msg, record.embeddingModel, record.dimension, record.pooling], ['retrieval: BM25 + dense, fused', dir, 32, 'mean']);
    } finally {
      await retriever?.close();
    }
  });

  it('fails with the embedder\'s error when the folder exists but holds no runnable model', async () => {
    const dir = (await writeTinyBert(join(root, 'broken'))).dir;
    await writeFile(join(dir, 'onnx', 'model.onnx'), 'not a protobuf');
    await rejectsWithModelError(openRetrieval(configWith(dir), silentLogger), 'MODEL_CORRUPT', /cannot load the sentence-embedding model/);
  });
});
