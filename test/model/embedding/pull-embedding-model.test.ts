import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { type PullProgress } from '../../../src/model/hub/hub.js';
import { pullEmbeddingModel } from '../../../src/model/embedding/pull-embedding-model.js';
import { SentenceEmbedder } from '../../../src/model/embedding/sentence-embedder.js';
import { rejectsWithModelError } from '../../helpers/model-errors.js';
import { type LoopbackHub, type LoopbackHubSetup, startLoopbackHub } from '../../helpers/loopback-hub.js';
import { writeTinyBert } from '../../helpers/tiny-bert/tiny-bert-folder.js';

const REPO = 'acme/tiny-sentence-bert';
const COMMIT = 'b'.repeat(40);
const PULLED = ['config.json', 'tokenizer.json', 'tokenizer_config.json', '1_Pooling/config.json', 'onnx/model.onnx'];

describe('pullEmbeddingModel from a loopback hub serving the tiny BERT', () => {
  let root: string;
  let sourceDir: string;
  let repoFiles: { files: Record<string, Uint8Array>; lfsFiles: Record<string, Uint8Array> };
  let hub: LoopbackHub | undefined;
  let run = 0;

  const serve = async (change: (setup: typeof repoFiles) => Partial<LoopbackHubSetup> = (setup) => setup): Promise<LoopbackHub> => {
    hub = await startLoopbackHub({ repo: REPO, commit: COMMIT, ...repoFiles, ...change(repoFiles) });
    return hub;
  };
  const freshOut = () => join(root, `pulled-${++run}`);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-embedding-pull-'));
    sourceDir = (await writeTinyBert(join(root, 'source'), { seed: 9 })).dir;
    const read = (name: string) => readFile(join(sourceDir, name));
    // As sentence-transformers/all-MiniLM-L6-v2 is laid out: what the embedder needs, and more.
    repoFiles = {
      files: {
        'config.json': await read('config.json'),
        'tokenizer.json': await read('tokenizer.json'),
        'tokenizer_config.json': await read('tokenizer_config.json'),
        '1_Pooling/config.json': await read('1_Pooling/config.json'),
        'modules.json': Buffer.from('[]'),
        'README.md': Buffer.from('# tiny'),
      },
      lfsFiles: {
        'model.safetensors': await read('model.safetensors'),
        'onnx/model.onnx': await read('onnx/model.onnx'),
        'onnx/model_quantized.onnx': Buffer.from('not needed'),
        'pytorch_model.bin': Buffer.from('not needed'),
      },
    };
  });
  afterEach(async () => {
    await hub?.close();
    hub = undefined;
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('downloads only what the embedder reads, with progress, into a folder that embeds as the source does', async () => {
    const served = await serve();
    const outDir = freshOut();
    const events: PullProgress[] = [];
    const result = await pullEmbeddingModel({ repo: REPO, outDir, endpoint: served.endpoint, onProgress: (p) => events.push({ ...p }) });

    assert.deepEqual(result, { commit: COMMIT, files: PULLED, dimension: 32, pooling: 'mean' });
    for (const name of ['model.safetensors', 'onnx/model_quantized.onnx', 'pytorch_model.bin', 'README.md', 'modules.json']) {
      assert.equal(served.fileRequests(name).length, 0, `${name} must not be downloaded`);
    }
    assert.deepEqual((await readdir(outDir, { recursive: true })).filter((name) => !['onnx', '1_Pooling'].includes(name)).sort(), [...PULLED].sort());
    assert.equal(existsSync(`${outDir}.download`), false);
    for (const [fileIndex, file] of PULLED.entries()) {
      const last = events.filter((e) => e.file === file).at(-1);
      assert.deepEqual(last && [last.fileIndex, last.fileCount, last.receivedBytes], [fileIndex, PULLED.length, last?.totalBytes], file);
    }

    const [pulled, source] = await Promise.all([SentenceEmbedder.load(outDir), SentenceEmbedder.load(sourceDir)]);
    try {
      const texts = ['How do I reset my password?', 'opening hours'];
      assert.deepEqual(await pulled.embed(texts), await source.embed(texts));
    } finally {
      await Promise.all([pulled.close(), source.close()]);
    }
  });

  test('a repo without onnx/model.onnx is refused before any download', async () => {
    const served = await serve(({ lfsFiles }) => ({ lfsFiles: { 'model.safetensors': lfsFiles['model.safetensors'] } }));
    const outDir = freshOut();
    await rejectsWithModelError(
      pullEmbeddingModel({ repo: REPO, outDir, endpoint: served.endpoint }),
      'HUB_ERROR',
      /acme\/tiny-sentence-bert@main has no onnx\/model\.onnx; sentence embeddings run as an ONNX export, so pick a repo that has one \(e\.g\. sentence-transformers\/all-MiniLM-L6-v2\)/,
    );
    assert.equal(served.requests.length, 1, 'only the listing');
    assert.equal(existsSync(outDir), false);
  });

  test('an export with external data and a repo without a tokenizer are refused before any download', async () => {
    let served = await serve(({ lfsFiles }) => ({ lfsFiles: { ...lfsFiles, 'onnx/model.onnx_data': Buffer.from('weights') } }));
    await rejectsWithModelError(pullEmbeddingModel({ repo: REPO, outDir: freshOut(), endpoint: served.endpoint }), 'HUB_ERROR', /onnx\/model\.onnx_data \(an export over 2 GB\)/);
    await served.close();
    served = await serve(({ files }) => ({ files: { 'config.json': files['config.json'] } }));
    await rejectsWithModelError(
      pullEmbeddingModel({ repo: REPO, outDir: freshOut(), endpoint: served.endpoint }),
      'HUB_ERROR',
      /lacks tokenizer\.json, tokenizer_config\.json, which a sentence-embedding model folder needs/,
    );
    assert.equal(served.requests.length, 1);
  });

  test('files the embedder cannot run fail with MODEL_CORRUPT and leave neither the folder nor the download', async () => {
    const served = await serve(({ lfsFiles }) => ({ lfsFiles: { ...lfsFiles, 'onnx/model.onnx': Buffer.from('not a protobuf') } }));
    const outDir = freshOut();
    await rejectsWithModelError(
      pullEmbeddingModel({ repo: REPO, outDir, endpoint: served.endpoint }),
      'MODEL_CORRUPT',
      /acme\/tiny-sentence-bert at bbbbbbbbbbbb is not a sentence-embedding model tunebot can run \(cannot load .*\); the download was removed/,
    );
    assert.equal(existsSync(outDir), false);
    assert.equal(existsSync(`${outDir}.download`), false);
  });
});
