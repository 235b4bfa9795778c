import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type LoopbackHub, startLoopbackHub } from '../helpers/loopback-hub.js';
import { assertExit, tunebot } from '../helpers/run-tunebot.js';
import { writeTinyBert } from '../helpers/tiny-bert/tiny-bert-folder.js';

describe('tunebot model pull --embedding', () => {
  const repo = 'test/tiny-sentence-bert';
  const commit = 'fedcba9876543210'.repeat(3).slice(0, 40);
  let root: string;
  let hub: LoopbackHub;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-cli-embedding-'));
    const source = (await writeTinyBert(join(root, 'source'), { seed: 4 })).dir;
    const read = (name: string) => readFile(join(source, name));
    hub = await startLoopbackHub({
      repo,
      commit,
      files: {
        'config.json': await read('config.json'),
        'tokenizer.json': await read('tokenizer.json'),
        'tokenizer_config.json': await read('tokenizer_config.json'),
        '1_Pooling/config.json': await read('1_Pooling/config.json'),
      },
      lfsFiles: { 'onnx/model.onnx': await read('onnx/model.onnx'), 'model.safetensors': await read('model.safetensors') },
    });
  });
  after(async () => {
    await hub?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('pulls into --out with a progress bar per file and says how to turn hybrid retrieval on', async () => {
    const out = join(root, 'minilm');
    const result = await tunebot(['model', 'pull', repo, '--embedding', '--out', out], { HF_ENDPOINT: hub.endpoint });
    assertExit(result, 0);
    assert.equal(
      result.stdout,
      `pulled ${repo} at ${commit.slice(0, 12)} (32-dimensional sentence embeddings, mean pooling) into ${out}\n` +
        `retrieval turns hybrid (BM25 + dense) once retrieval.embeddingModel names it: TUNEBOT_RETRIEVAL_EMBEDDING_MODEL=${out}\n`,
    );
    for (const line of ['[1/5] config.json', '[4/5] 1_Pooling/config.json', '[5/5] onnx/model.onnx']) assert.ok(result.stderr.includes(line), `progress for ${line}:\n${result.stderr}`);
    assert.ok(existsSync(join(out, 'onnx', 'model.onnx')));
    assert.equal(hub.fileRequests('model.safetensors').length, 0);
  });

  it('pulls into retrieval.embeddingModel when --out is not given, with no hint then', async () => {
    const configured = join(root, 'configured');
    const result = await tunebot(['model', 'pull', repo, '--embedding'], { HF_ENDPOINT: hub.endpoint, TUNEBOT_RETRIEVAL_EMBEDDING_MODEL: configured });
    assertExit(result, 0);
    assert.equal(result.stdout, `pulled ${repo} at ${commit.slice(0, 12)} (32-dimensional sentence embeddings, mean pooling) into ${configured}\n`);
    assert.ok(existsSync(join(configured, 'tokenizer.json')));
  });

  it('exits 2 without a folder to pull into, or with --onnx, and 1 for an existing folder', async () => {
    const requestsBefore = hub.requests.length;
    const noFolder = await tunebot(['model', 'pull', repo, '--embedding'], { HF_ENDPOINT: hub.endpoint });
    assertExit(noFolder, 2);
    assert.match(noFolder.stderr, /--out DIR is required when retrieval\.embeddingModel \(TUNEBOT_RETRIEVAL_EMBEDDING_MODEL\) is not set/);
    const withOnnx = await tunebot(['model', 'pull', repo, '--embedding', '--onnx', '--out', join(root, 'x')], { HF_ENDPOINT: hub.endpoint });
    assertExit(withOnnx, 2);
    assert.match(withOnnx.stderr, /--onnx is for GPT-2 checkpoints/);
    const existing = await tunebot(['model', 'pull', repo, '--embedding', '--out', join(root, 'source')], { HF_ENDPOINT: hub.endpoint });
    assertExit(existing, 1);
    assert.match(existing.stderr, /already exists; give --out a new folder/);
    assert.equal(hub.requests.length, requestsBefore, 'no request reached the hub');
  });
});
