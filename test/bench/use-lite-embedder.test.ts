import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UseLiteEmbedder } from '../../bench/use-lite-embedder.js';

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

describe('UseLiteEmbedder (bench:answers --embedder use-lite)', () => {
  let embedder: UseLiteEmbedder;

  before(async () => {
    embedder = await UseLiteEmbedder.load();
  });
  after(async () => {
    await embedder?.close();
  });

  it('gives one unit vector of 512 dimensions per text, the same alone as in a batch of more than one model run', async () => {
    assert.equal(embedder.dimension, 512);
    // 70 texts: a batch of 64 and one of 6.
    const texts = Array.from({ length: 70 }, (_, i) => `question number ${i} about renting bikes`);
    const batched = await embedder.embed(texts);
    assert.equal(batched.length, 70);
    for (const vector of batched) {
      assert.equal(vector.length, 512);
      assert.ok(Math.abs(dot(vector, vector) - 1) < 1e-5, `norm² ${dot(vector, vector)}`);
    }
    for (const i of [0, 63, 64, 69]) {
      const [alone] = await embedder.embed([texts[i]]);
      assert.ok(dot(alone, batched[i]) > 0.9999, `text ${i}: cosine ${dot(alone, batched[i])} between alone and batched`);
    }
    assert.deepEqual(await embedder.embed([]), []);
  });

  it('puts a rewording closer than an unrelated question', async () => {
    const [question, rewording, unrelated] = await embedder.embed(['How do I cancel my subscription?', 'how can i stop paying for my plan', 'What time does the museum open?']);
    assert.ok(dot(question, rewording) > dot(question, unrelated) + 0.1, `rewording ${dot(question, rewording)}, unrelated ${dot(question, unrelated)}`);
  });

  it('refuses to embed once closed', async () => {
    const closing = await UseLiteEmbedder.load();
    await closing.close();
    await assert.rejects(closing.embed(['anything']), /the USE-lite embedder is closed/);
  });
});
