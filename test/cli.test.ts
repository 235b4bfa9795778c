import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parameterCount, presetConfig } from '../src/model/config.js';
import { initModel } from '../src/model/files/model-dir.js';
import { type LoopbackHub, closedPort, startLoopbackHub } from './helpers/loopback-hub.js';
import { assertExit, tunebot } from './helpers/run-tunebot.js';

const MODEL_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'onnx', 'tokenizer.json', 'tokenizer_config.json'];
const TINY_PARAMETERS = parameterCount(presetConfig('tiny')).toLocaleString('en');

let root: string;
/** A tiny model made in-process with seed 3, the reference the CLI's output is compared with. */
let modelDir: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tunebot-cli-'));
  modelDir = join(root, 'reference');
  await initModel(modelDir, 'tiny', 3);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function assertSameModel(dir: string, reference: string): Promise<void> {
  assert.deepEqual((await readdir(dir)).sort(), MODEL_FILES);
  for (const file of ['model.safetensors', join('onnx', 'model.onnx'), 'config.json', 'tokenizer.json']) {
    assert.ok((await readFile(join(dir, file))).equals(await readFile(join(reference, file))), `${file} differs from the reference model's`);
  }
}

describe('tunebot help', () => {
  it('lists the commands and exits 0', async () => {
    const help = await tunebot(['help']);
    assertExit(help, 0);
    for (const command of ['model init', 'model pull', 'model import', 'generate']) assert.ok(help.stdout.includes(`tunebot ${command}`), command);
  });

  it('an unknown command prints help on stderr and exits 2', async () => {
    const result = await tunebot(['frobnicate', 'now']);
    assertExit(result, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^unknown command "frobnicate now"/);
    assert.match(result.stderr, /Commands:\n[^]*tunebot generate/);
  });
});

// Each test works in its own folders, so two run at once: the children are single-threaded.
describe('tunebot model init', { concurrency: 2 }, () => {
  it('creates a complete model folder and prints the parameter count', async () => {
    const out = join(root, 'init');
    const result = await tunebot(['model', 'init', '--preset', 'tiny', '--seed', '3', '--out', out]);
    assertExit(result, 0);
    assert.equal(result.stdout, `created tiny model (${TINY_PARAMETERS} parameters, seed 3) in ${out}\n`);
    await assertSameModel(out, modelDir);
  });

  it('a bad preset or a missing --out exits 2 with the usage', async () => {
    const badPresetOut = join(root, 'bad-preset');
    const results = await Promise.all([
      tunebot(['model', 'init', '--preset', 'huge', '--out', badPresetOut]),
      tunebot(['model', 'init', '--preset', 'tiny']),
    ]);
    const messages = [/--preset must be one of tiny, gpt2, gpt2-medium, got "huge"/, /--out DIR is required/];
    for (const [i, result] of results.entries()) {
      assertExit(result, 2);
      assert.match(result.stderr, messages[i]);
      assert.match(result.stderr, /\nusage: tunebot model init --preset tiny\|gpt2\|gpt2-medium \[--seed N\] --out DIR\n$/);
    }
    assert.equal(existsSync(badPresetOut), false);
  });

  it('refuses an existing folder with exit 1 and leaves it untouched', async () => {
    const out = join(root, 'existing');
    await mkdir(out);
    await writeFile(join(out, 'notes.txt'), 'keep me');
    const modified = (await stat(join(out, 'notes.txt'))).mtimeMs;
    const result = await tunebot(['model', 'init', '--preset', 'tiny', '--out', out]);
    assertExit(result, 1);
    assert.equal(result.stderr, `error OPTIONS_INVALID: ${out} already exists; give --out a new folder (a model folder is never overwritten)\n`);
    assert.deepEqual(await readdir(out), ['notes.txt']);
    assert.equal(await readFile(join(out, 'notes.txt'), 'utf8'), 'keep me');
    assert.equal((await stat(join(out, 'notes.txt'))).mtimeMs, modified);
    assert.deepEqual((await readdir(root)).filter((name) => name.startsWith('existing')), ['existing'], 'no temporary folder left beside it');
  });
});

describe('tunebot model import', () => {
  it('re-imports a model folder with the same weights', async () => {
    const out = join(root, 'imported');
    const result = await tunebot(['model', 'import', modelDir, '--out', out]);
    assertExit(result, 0);
    assert.equal(result.stdout, `imported ${modelDir} (${TINY_PARAMETERS} parameters) into ${out}\n`);
    await assertSameModel(out, modelDir);
  });
});

describe('tunebot generate', { concurrency: 2 }, () => {
  const generate = (...args: string[]) => tunebot(['generate', '--model', modelDir, 'Hello', '--max-new-tokens', '5', ...args]);

  it('greedy decoding prints text and exits 0', async () => {
    const result = await generate('--seed', '1', '--greedy');
    assertExit(result, 0);
    assert.ok(result.stdout.endsWith('\n'));
    assert.ok(result.stdout.trim().length > 0, `no text: ${JSON.stringify(result.stdout)}`);
    assert.equal(result.stderr, '', 'LOG_LEVEL=warn leaves stderr quiet on success');
  });

  it('the same seed prints the same sampled text', async () => {
    const [first, again] = await Promise.all([generate('--seed', '7'), generate('--seed', '7')]);
    for (const result of [first, again]) assertExit(result, 0);
    assert.ok(first.stdout.trim().length > 0);
    assert.equal(again.stdout, first.stdout);
  });

  it('a negative temperature exits 1 with the options error, before any model is loaded', async () => {
    const result = await tunebot(['generate', '--model', join(root, 'nonexistent'), 'Hello', '--temperature=-1']);
    assertExit(result, 1);
    assert.equal(result.stderr, 'error OPTIONS_INVALID: temperature must be a number >= 0 (0 means greedy), got -1\n');
    assert.equal(result.stdout, '');
  });

  it('a folder without a model exits 1 and says how to make one', async () => {
    const missing = join(root, 'nonexistent');
    const result = await tunebot(['generate', '--model', missing, 'x']);
    assertExit(result, 1);
    assert.match(result.stderr, new RegExp(`^error MODEL_NOT_FOUND: no model at ${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}; create one with \`tunebot model init`));
  });
});

describe('tunebot model pull', () => {
  it('exits 1 at once with the offline message when the hub cannot be reached', async () => {
    const out = join(root, 'offline');
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const result = await tunebot(['model', 'pull', 'gpt2', '--out', out], { HF_ENDPOINT: endpoint });
    assertExit(result, 1);
    assert.ok(result.ms < 10_000, `took ${result.ms} ms`);
    assert.match(result.stderr, new RegExp(`cannot reach the Hugging Face hub at ${endpoint.replace(/\./g, '\\.')}`));
    assert.match(result.stderr, /HF_ENDPOINT/);
    assert.match(result.stderr, /tunebot model init/);
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(`${out}.download`), false);
  });

  describe('from a loopback hub serving a tiny model', () => {
    const repo = 'test/tiny';
    const commit = '0123456789abcdef'.repeat(3).slice(0, 40);
    let hub: LoopbackHub;
    before(async () => {
      const read = (file: string) => readFile(join(modelDir, file));
      hub = await startLoopbackHub({
        repo,
        commit,
        files: {
          'config.json': await read('config.json'),
          'generation_config.json': await read('generation_config.json'),
          'tokenizer.json': await read('tokenizer.json'),
          'tokenizer_config.json': await read('tokenizer_config.json'),
        },
        lfsFiles: { 'model.safetensors': await read('model.safetensors') },
      });
    });
    after(async () => {
      await hub.close();
    });

    it('pulls into a loadable model folder with the same weights and no download folder left', async () => {
      const out = join(root, 'pulled');
      const result = await tunebot(['model', 'pull', repo, '--out', out], { HF_ENDPOINT: hub.endpoint });
      assertExit(result, 0);
      assert.ok(result.stdout.endsWith(`pulled ${repo} at ${commit.slice(0, 12)} (${TINY_PARAMETERS} parameters) into ${out}\n`), result.stdout);
      await assertSameModel(out, modelDir);
      assert.equal(existsSync(`${out}.download`), false);
      assert.equal(hub.fileRequests('model.safetensors').filter((r) => r.server === 'cdn').length, 1);
    });

    it('refuses an existing --out before downloading anything', async () => {
      const out = join(root, 'pulled-existing');
      await mkdir(out);
      const requestsBefore = hub.requests.length;
      const result = await tunebot(['model', 'pull', repo, '--out', out], { HF_ENDPOINT: hub.endpoint });
      assertExit(result, 1);
      assert.match(result.stderr, /already exists; give --out a new folder/);
      assert.equal(hub.requests.length, requestsBefore, 'no request reached the hub');
      assert.deepEqual(await readdir(out), []);
      assert.equal(existsSync(`${out}.download`), false);
    });
  });
});
