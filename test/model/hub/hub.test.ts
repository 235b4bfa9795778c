import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { ModelError } from '../../../src/model/errors.js';
import { type PullProgress, gpt2Checkpoint, pullFromHub } from '../../../src/model/hub/hub.js';
import { type LoopbackHub, type LoopbackHubSetup, closedPort, startLoopbackHub } from '../../helpers/loopback-hub.js';

const REPO = 'acme/tiny-gpt2';
const COMMIT = 'a'.repeat(40);

/** Deterministic bytes, so a wrong offset on resume shows up as a wrong hash. */
function patternBytes(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

const SMALL_FILES: Record<string, Buffer> = {
  'config.json': Buffer.from(JSON.stringify({ model_type: 'gpt2', n_layer: 2 })),
  'generation_config.json': Buffer.from('{"bos_token_id":50256}'),
  'tokenizer.json': patternBytes(40_000, 1),
  'tokenizer_config.json': Buffer.from('{"model_max_length":128}'),
  'vocab.json': patternBytes(20_000, 2),
  'merges.txt': patternBytes(10_000, 3),
  'README.md': Buffer.from('# tiny'),
  'pytorch_model.bin': patternBytes(1_000, 4),
};
const WEIGHTS = patternBytes(300_000, 5);
const ONNX = patternBytes(50_000, 6);
const EXPECTED_FILES = [
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'generation_config.json',
  'vocab.json',
  'merges.txt',
  'model.safetensors',
];

function startFakeHub(faults: Partial<LoopbackHubSetup>): Promise<LoopbackHub> {
  return startLoopbackHub({ repo: REPO, commit: COMMIT, files: SMALL_FILES, lfsFiles: { 'model.safetensors': WEIGHTS }, ...faults });
}

async function rejectsWith(promise: Promise<unknown>, code: string, message: RegExp): Promise<ModelError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ModelError, `expected a ModelError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return error;
  }
  assert.fail(`expected ${code}`);
}

async function assertModelFiles(outDir: string, names: string[], onnx = false): Promise<void> {
  for (const name of names) {
    const expected = name === 'model.safetensors' ? WEIGHTS : SMALL_FILES[name];
    assert.ok((await readFile(join(outDir, name))).equals(expected), `${name} differs from the served file`);
  }
  if (onnx) assert.ok((await readFile(join(outDir, 'onnx/model.onnx'))).equals(ONNX));
  assert.equal(existsSync(join(outDir, '.partial')), false, '.partial must be removed after a complete pull');
}

describe('pullFromHub', () => {
  const savedEnv = { HF_TOKEN: process.env.HF_TOKEN, HF_ENDPOINT: process.env.HF_ENDPOINT };
  let workDir: string;
  let outDir: string;
  let hub: LoopbackHub | undefined;

  before(() => {
    delete process.env.HF_TOKEN;
    delete process.env.HF_ENDPOINT;
  });
  after(() => {
    for (const [name, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  beforeEach(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'tunebot-hub-'));
    outDir = join(workDir, 'model');
  });
  afterEach(async () => {
    await hub?.close();
    hub = undefined;
    delete process.env.HF_TOKEN;
    delete process.env.HF_ENDPOINT;
    await rm(workDir, { recursive: true, force: true });
  });

  test('downloads the model files with progress, skipping what a model folder does not use', async () => {
    hub = await startFakeHub({});
    const events: PullProgress[] = [];
    const result = await pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint, onProgress: (p) => events.push({ ...p }) });

    assert.deepEqual(result, { outDir, commit: COMMIT, files: EXPECTED_FILES });
    await assertModelFiles(outDir, EXPECTED_FILES);
    assert.deepEqual((await readdir(outDir)).sort(), [...EXPECTED_FILES].sort());
    for (const skipped of ['README.md', 'pytorch_model.bin', 'onnx/model.onnx']) {
      assert.equal(hub.fileRequests(skipped).length, 0, `${skipped} must not be downloaded`);
    }

    for (const [fileIndex, file] of EXPECTED_FILES.entries()) {
      const fileEvents = events.filter((e) => e.file === file);
      assert.ok(fileEvents.length > 0, `no progress for ${file}`);
      const expectedSize = file === 'model.safetensors' ? WEIGHTS.length : SMALL_FILES[file].length;
      for (const e of fileEvents) assert.deepEqual([e.fileIndex, e.fileCount, e.totalBytes], [fileIndex, 7, expectedSize]);
      const received = fileEvents.map((e) => e.receivedBytes);
      assert.deepEqual(received, [...received].sort((a, b) => a - b), `progress of ${file} must not go backwards`);
      assert.equal(received.at(-1), expectedSize);
    }
    assert.ok(events.filter((e) => e.file === 'model.safetensors').length > 2, 'a large file reports progress while it streams');
  });

  test('sends HF_TOKEN as a Bearer token to the hub but not to a CDN on another origin', async () => {
    hub = await startFakeHub({});
    await pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint, token: 'hf_secret' });
    const hubRequests = hub.requests.filter((r) => r.server === 'hub');
    assert.ok(hubRequests.length >= 8);
    for (const r of hubRequests) assert.equal(r.authorization, 'Bearer hf_secret', r.path);
    const cdnRequests = hub.requests.filter((r) => r.server === 'cdn');
    assert.equal(cdnRequests.length, 1);
    assert.equal(cdnRequests[0].authorization, undefined);
  });

  test('takes the endpoint and token from HF_ENDPOINT and HF_TOKEN when the options omit them', async () => {
    hub = await startFakeHub({});
    process.env.HF_ENDPOINT = `${hub.endpoint}/`;
    process.env.HF_TOKEN = 'hf_from_env';
    const result = await pullFromHub({ repo: REPO, outDir });
    assert.equal(result.commit, COMMIT);
    assert.equal(hub.requests[0].path, `/api/models/${REPO}/revision/main?blobs=true`);
    assert.equal(hub.requests[0].authorization, 'Bearer hf_from_env');
    await assertModelFiles(outDir, EXPECTED_FILES);
  });

  test('resumes with a Range request after the connection drops mid-file', async () => {
    hub = await startFakeHub({ drop: { file: 'model.safetensors', bytes: 100_000, times: 1 } });
    await pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint });
    const weightRequests = hub.fileRequests('model.safetensors').filter((r) => r.server === 'cdn');
    assert.equal(weightRequests.length, 2);
    assert.equal(weightRequests[0].range, undefined);
    const resumedFrom = Number(/^bytes=(\d+)-$/.exec(weightRequests[1].range ?? '')?.[1]);
    assert.ok(resumedFrom > 0 && resumedFrom <= 100_000, `second request's Range: ${weightRequests[1].range}`);
    await assertModelFiles(outDir, EXPECTED_FILES);
  });

  test('restarts from zero when the server ignores Range and answers 200', async () => {
    hub = await startFakeHub({ drop: { file: 'model.safetensors', bytes: 100_000, times: 1 }, ignoreRange: true });
    await pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint });
    const weightRequests = hub.fileRequests('model.safetensors').filter((r) => r.server === 'cdn');
    assert.equal(weightRequests.length, 2);
    assert.match(weightRequests[1].range ?? '', /^bytes=\d+-$/);
    await assertModelFiles(outDir, EXPECTED_FILES);
  });

  test('a sha256 mismatch fails with DOWNLOAD_CORRUPT and leaves no model file behind', async () => {
    hub = await startFakeHub({ corrupt: ['model.safetensors'] });
    await rejectsWith(pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint }), 'DOWNLOAD_CORRUPT', /model\.safetensors.*sha256/);
    assert.deepEqual(await readdir(outDir), ['.partial']);
    assert.equal(existsSync(join(outDir, '.partial', 'model.safetensors.incomplete')), false);
  });

  test('a file longer than listed fails with DOWNLOAD_CORRUPT', async () => {
    hub = await startFakeHub({ oversize: ['config.json'] });
    await rejectsWith(pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint }), 'DOWNLOAD_CORRUPT', /config\.json is \d+ bytes/);
    assert.deepEqual(await readdir(outDir), ['.partial']);
  });

  test('404 and 401 from the hub are HUB_ERRORs that say what to do', async () => {
    hub = await startFakeHub({});
    await rejectsWith(
      pullFromHub({ repo: 'acme/missing', outDir, endpoint: hub.endpoint }),
      'HUB_ERROR',
      /repo or revision not found.*acme\/missing@main/,
    );
    await hub.close();
    hub = await startFakeHub({ listingStatus: 401 });
    await rejectsWith(pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint }), 'HUB_ERROR', /HTTP 401.*set HF_TOKEN/);
    await rejectsWith(
      pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint, token: 'hf_bad' }),
      'HUB_ERROR',
      /HF_TOKEN was sent/,
    );
    assert.equal(hub.requests.length, 2, 'client errors are not retried');
  });

  test('an unreachable endpoint fails at once with HUB_OFFLINE', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const started = performance.now();
    const error = await rejectsWith(pullFromHub({ repo: REPO, outDir, endpoint }), 'HUB_OFFLINE', /ECONNREFUSED/);
    assert.ok(performance.now() - started < 2000, 'no retries when the hub cannot be reached');
    assert.ok(error.message.includes(endpoint));
    assert.match(error.message, /HF_ENDPOINT/);
    assert.match(error.message, /tunebot model init/);
  });

  test('an interrupted pull keeps its partial file and the next pull resumes it', async () => {
    hub = await startFakeHub({ drop: { file: 'model.safetensors', bytes: 100_000, times: 2 } });
    await rejectsWith(
      pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint, retries: 1 }),
      'HUB_ERROR',
      /model\.safetensors failed after 2 attempts.*pull again/,
    );
    assert.deepEqual(await readdir(outDir), ['.partial'], 'nothing lands in outDir before the pull completes');
    const firstPullRanges = hub.fileRequests('model.safetensors').filter((r) => r.server === 'cdn').map((r) => r.range);
    assert.equal(firstPullRanges.length, 2);
    const retriedFrom = Number(/^bytes=(\d+)-$/.exec(firstPullRanges[1] ?? '')?.[1]);
    assert.ok(retriedFrom > 0, `the retry resumes too: ${firstPullRanges[1]}`);
    const partialSize = (await stat(join(outDir, '.partial', 'model.safetensors.incomplete'))).size;
    assert.ok(partialSize > retriedFrom && partialSize < WEIGHTS.length, `partial holds ${partialSize} bytes`);
    await hub.close();

    hub = await startFakeHub({});
    await pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint });
    const weightRequests = hub.fileRequests('model.safetensors').filter((r) => r.server === 'cdn');
    assert.deepEqual(
      weightRequests.map((r) => r.range),
      [`bytes=${partialSize}-`],
    );
    assert.equal(hub.fileRequests('tokenizer.json').length, 0, 'files completed by the first pull are not fetched again');
    await assertModelFiles(outDir, EXPECTED_FILES);
  });

  test('an AbortSignal cancels the pull with ABORTED and keeps the partial for later', async () => {
    hub = await startFakeHub({});
    const controller = new AbortController();
    const onProgress = (p: PullProgress): void => {
      if (p.file === 'model.safetensors' && p.receivedBytes > 0) controller.abort();
    };
    await rejectsWith(
      pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint, signal: controller.signal, onProgress }),
      'ABORTED',
      /cancelled/,
    );
    assert.deepEqual(await readdir(outDir), ['.partial']);
    assert.ok((await stat(join(outDir, '.partial', 'model.safetensors.incomplete'))).size > 0);
  });

  test('gpt2Checkpoint(true) adds onnx/model.onnx', async () => {
    hub = await startFakeHub({ lfsFiles: { 'model.safetensors': WEIGHTS, 'onnx/model.onnx': ONNX } });
    const result = await pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint, files: gpt2Checkpoint(true) });
    assert.deepEqual(result.files, [...EXPECTED_FILES, 'onnx/model.onnx']);
    await assertModelFiles(outDir, EXPECTED_FILES, true);
  });

  test('a repo without model.safetensors is refused before any download', async () => {
    hub = await startFakeHub({ lfsFiles: { 'pytorch_model.bin': WEIGHTS } });
    await rejectsWith(
      pullFromHub({ repo: REPO, outDir, endpoint: hub.endpoint }),
      'HUB_ERROR',
      /no model\.safetensors \(it has pytorch_model\.bin\); only single-file safetensors/,
    );
    assert.equal(hub.requests.length, 1);
  });

  test('rejects a malformed repo id', async () => {
    await rejectsWith(pullFromHub({ repo: '../etc', outDir }), 'OPTIONS_INVALID', /owner\/name/);
  });
});
