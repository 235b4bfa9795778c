import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ModelRegistry } from '../../src/core/serving/model-registry.js';
import { RemoteModel } from '../../src/core/serving/remote-model.js';
import { ModelError } from '../../src/model/errors.js';
import { assertExit, type RunningTunebot, startTunebot, tunebot } from '../helpers/run-tunebot.js';
import { publishTinyVersion } from '../helpers/tiny-versions.js';

/** Nearly the whole 1024-token context: long enough to still run when the SIGTERM is handled. */
const LONG = 1000;

describe('tunebot serve-model', () => {
  let dir: string;
  let running: RunningTunebot | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tunebot-serve-model-'));
  });
  after(async () => {
    await running?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts with no version (503), serves one swapped in, and on SIGTERM finishes the reply in flight and exits 0', async () => {
    const registry = new ModelRegistry(join(dir, 'models'));
    const served = startTunebot(['serve-model', '--port', '0'], { TUNEBOT_MODEL_DIR: registry.root, TUNEBOT_MODEL_EXECUTION_PROVIDER: 'cpu', TUNEBOT_MODEL_INTRA_OP_THREADS: '1', LOG_LEVEL: 'info' });
    running = served;
    const url = await served.stdoutMatch(/serves the model at (http:\/\/\S+)\n/, 'the serving line');
    assert.match(served.stdout, /there is no model version in .*models yet: generate requests get 503/);
    const model = await RemoteModel.connect(url);
    assert.equal(model.version, null);

    await publishTinyVersion(registry, 'v1', 3, 1024);
    await model.swapTo('v1');
    const stream = model.generate('Hello there', { greedy: true, maxNewTokens: LONG });
    assert.ok(stream);
    let ended = false;
    void stream.result.finally(() => (ended = true));
    const pieces = stream[Symbol.asyncIterator]();
    let text = ((await pieces.next()).value as string) ?? '';
    served.child.kill('SIGTERM');
    await served.until(() => served.stderr.includes('shutting down'), 'the shutdown');
    assert.equal(ended, false, 'the reply was still running when the shutdown began');
    for (let next = await pieces.next(); !next.done; next = await pieces.next()) text += next.value;
    assert.equal((await stream.result).generatedTokens, LONG, 'the reply in flight ran to its end');
    assert.ok(text.length > 0);
    assert.equal(await served.exitCodeWithin(30_000), 0, served.stderr);

    const started = performance.now();
    await assert.rejects(RemoteModel.connect(url), (error: unknown) => error instanceof ModelError && error.code === 'MODEL_SERVER_UNAVAILABLE');
    assert.ok(performance.now() - started < 2000, 'a stopped server is found gone at once');
  });

  it('refuses a bad port with its usage and exit code 2', async () => {
    const result = await tunebot(['serve-model', '--port', '70000']);
    assertExit(result, 2);
    assert.match(result.stderr, /--port must be 0-65535, got "70000"\nusage: tunebot serve-model \[--port N\]/);
  });
});
