import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AnswerOutcome } from '../../src/core/conversation/engine.js';
import type { FaqEntry } from '../../src/core/faq/entry.js';
import { HybridRetriever, type RetrievalHit } from '../../src/core/retrieval/hybrid-retriever.js';
import { writeTinyBert } from '../helpers/tiny-bert/tiny-bert-folder.js';
import { type EngineFixture, ask, importSampleFaq, localMessage, startEngineFixture } from './engine-fixture.js';

const QUESTION = 'Does tunebot need a GPU?';
const ANSWER = 'No. It runs on the CPU, and uses an NVIDIA GPU when there is one.';

/** The engine's reply to QUESTION and what it says it answered from. */
async function askQuestion(fixture: EngineFixture): Promise<{ reply: string; outcome: AnswerOutcome }> {
  const outcomes: AnswerOutcome[] = [];
  const stop = fixture.engine.onAnswer((outcome) => outcomes.push(outcome));
  try {
    const reply = await ask(fixture.engine, localMessage('asker', QUESTION));
    assert.equal(outcomes.length, 1);
    return { reply, outcome: outcomes[0] };
  } finally {
    stop();
  }
}

describe('the app with and without a sentence-embedding model', () => {
  let root: string;
  let modelDir: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-hybrid-app-'));
    modelDir = (await writeTinyBert(join(root, 'minilm'), { seed: 6 })).dir;
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('loads hybrid retrieval from retrieval.embeddingModel, answers from the FAQ, and fuses the FAQ store\'s BM25 hits with dense ones', async () => {
    const fixture = await startEngineFixture({ TUNEBOT_RETRIEVAL_EMBEDDING_MODEL: modelDir });
    try {
      const { retriever } = fixture.app;
      assert.ok(retriever instanceof HybridRetriever, 'the app has a hybrid retriever');
      assert.equal(retriever.dimension, 32);
      await importSampleFaq(fixture.faq);

      const { reply, outcome } = await askQuestion(fixture);
      assert.equal(outcome.path, 'faq');
      assert.ok(reply.includes(ANSWER), reply);

      // The FAQ store's search is BM25 fused with the dense side: every hit has both confidences.
      const hits = (await fixture.faq.search(QUESTION, 3)) as RetrievalHit<FaqEntry>[];
      assert.equal(hits.length, 3);
      assert.equal(hits[0].entry.id, outcome.entryId);
      assert.equal(hits[0].phrasing, 0, 'asked as its question');
      assert.ok(Math.abs((hits[0].similarity as number) - 1) < 1e-6, `the question's own cosine is ${hits[0].similarity}`);
      assert.ok(hits[0].confidence > 0.999);
      for (const hit of hits) {
        assert.notEqual(hit.dense, null, `${hit.entry.id} has a dense confidence`);
        const l = hit.lexical;
        const d = hit.dense as number;
        assert.ok(Math.abs(hit.confidence - (1 - Math.sqrt((1 - l) * (1 - d)))) < 1e-12, `${hit.entry.id} is fused`);
        assert.equal(hit.score, hit.confidence, 'the answer policy compares hits by their fused confidence (their order is by rank: hybrid-retriever.test.ts)');
      }
    } finally {
      await fixture.close();
    }
  });

  for (const [name, env] of [
    ['without retrieval.embeddingModel', {}],
    ['with retrieval.embeddingModel naming a missing folder', { TUNEBOT_RETRIEVAL_EMBEDDING_MODEL: '/nonexistent/minilm' }],
  ] as const) {
    it(`runs BM25 alone ${name}, and answers the same`, async () => {
      const fixture = await startEngineFixture(env);
      try {
        assert.equal(fixture.app.retriever, null);
        await importSampleFaq(fixture.faq);
        const { reply, outcome } = await askQuestion(fixture);
        assert.equal(outcome.path, 'faq');
        assert.ok(reply.includes(ANSWER), reply);
      } finally {
        await fixture.close();
      }
    });
  }
});
