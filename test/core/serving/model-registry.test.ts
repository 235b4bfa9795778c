import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ModelRegistry, RegistryError } from '../../../src/core/serving/model-registry.js';
import { configJson, presetConfig } from '../../../src/model/config.js';
import { ModelError } from '../../../src/model/errors.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tunebot-registry-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let folders = 0;
/** A finished folder the registry takes as a model: what publish checks is config.json. */
async function finishedModel(training?: unknown): Promise<string> {
  const dir = join(root, `finished-${folders++}`);
  await mkdir(dir);
  await writeFile(join(dir, 'config.json'), JSON.stringify(configJson(presetConfig('tiny'))));
  await writeFile(join(dir, 'model.safetensors'), `weights ${folders}`);
  if (training !== undefined) await writeFile(join(dir, 'training.json'), JSON.stringify(training));
  return dir;
}

async function registryWith(name: string, versions: string[]): Promise<ModelRegistry> {
  const registry = new ModelRegistry(join(root, name));
  for (const version of versions) await registry.publish(await finishedModel(), version);
  return registry;
}

/** Every file under dir with its size, modification time and content hash. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const info = await stat(path);
    files[path] = entry.isFile() ? `${info.size} ${info.mtimeMs} ${createHash('sha256').update(await readFile(path)).digest('hex')}` : `dir ${info.mtimeMs}`;
  }
  return files;
}

function registryError(message: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof RegistryError, String(error));
    assert.equal(error.code, 'REGISTRY');
    assert.match(error.message, message);
    return true;
  };
}

describe('ModelRegistry', () => {
  it('is empty before the first publish', async () => {
    const registry = new ModelRegistry(join(root, 'never-written'));
    assert.deepEqual(await registry.versions(), []);
    assert.equal(await registry.currentVersion(), null);
    assert.equal(await registry.currentDir(), null);
    assert.equal(await registry.nextVersion(), 'v1');
  });

  it('lists versions in numeric order: v1, v2, v10', async () => {
    const registry = await registryWith('sorted', ['v10', 'v2', 'v1']);
    await mkdir(join(registry.root, 'not-a-version'));
    await mkdir(join(registry.root, '.staging-scope'));
    await writeFile(join(registry.root, 'v3'), 'a file, not a version');
    assert.deepEqual((await registry.versions()).map((version) => version.version), ['v1', 'v2', 'v10']);
    assert.equal(await registry.nextVersion(), 'v11');
  });

  it('publishes a finished folder by moving it in, not yet live, with its training record', async () => {
    const registry = new ModelRegistry(join(root, 'publish'));
    const finished = await finishedModel({ steps: 12 });
    const before = await readFile(join(finished, 'model.safetensors'), 'utf8');
    const dir = await registry.publish(finished, 'v1');
    assert.equal(dir, registry.dirOf('v1'));
    await assert.rejects(stat(finished), /ENOENT/);
    assert.equal(await readFile(join(dir, 'model.safetensors'), 'utf8'), before);
    assert.deepEqual(await registry.versions(), [{ version: 'v1', dir, current: false, training: { steps: 12 } }]);
    assert.equal(await registry.currentVersion(), null);
  });

  it('refuses to publish a folder that is not a model, and leaves it where it was', async () => {
    const registry = await registryWith('refuse', ['v1']);
    const notModel = join(root, 'not-a-model');
    await mkdir(notModel);
    await writeFile(join(notModel, 'notes.txt'), 'hello');
    await assert.rejects(registry.publish(notModel, 'v2'), (error: unknown) => {
      assert.ok(error instanceof ModelError, String(error));
      assert.equal(error.code, 'MODEL_NOT_FOUND');
      assert.match(error.message, /config\.json is missing/);
      return true;
    });
    assert.equal(await readFile(join(notModel, 'notes.txt'), 'utf8'), 'hello');
    assert.deepEqual((await registry.versions()).map((version) => version.version), ['v1']);
  });

  it('never publishes over an existing version', async () => {
    const registry = await registryWith('overwrite', ['v1']);
    const published = await snapshot(registry.dirOf('v1'));
    const other = await finishedModel();
    await assert.rejects(registry.publish(other, 'v1'));
    assert.deepEqual(await snapshot(registry.dirOf('v1')), published);
    await stat(join(other, 'config.json'));
  });

  it('rejects names that are not versions', async () => {
    const registry = new ModelRegistry(join(root, 'names'));
    for (const name of ['1', 'v', 'v1a', '../v1', 'V1', 'latest']) assert.throws(() => registry.dirOf(name), registryError(/is not a version name/));
    await assert.rejects(registry.publish(await finishedModel(), '../escape'), registryError(/is not a version name/));
  });

  it('use() makes a version live and rolls back to an older one', async () => {
    const registry = await registryWith('use', ['v1', 'v2']);
    await registry.use('v2');
    assert.equal(await registry.currentVersion(), 'v2');
    assert.equal(await registry.currentDir(), registry.dirOf('v2'));
    assert.deepEqual((await registry.versions()).map((version) => version.current), [false, true]);
    await registry.use('v1');
    assert.equal(await registry.currentVersion(), 'v1');
  });

  it('use() of an unknown version fails with the versions there are, and keeps the live one', async () => {
    const registry = await registryWith('unknown', ['v1', 'v2', 'v10']);
    await registry.use('v2');
    await assert.rejects(registry.use('v3'), registryError(/there is no version v3; the versions are v1, v2, v10/));
    await assert.rejects(registry.use('latest'), registryError(/the versions are v1, v2, v10/));
    assert.equal(await registry.currentVersion(), 'v2');
    const empty = new ModelRegistry(join(root, 'unknown-empty'));
    await assert.rejects(empty.use('v1'), registryError(/\(none yet\)/));
  });

  it('switches the pointer atomically: concurrent readers always see a whole version name', async () => {
    const registry = await registryWith('atomic', ['v1', 'v2', 'v10']);
    await registry.use('v1');
    const names = ['v1', 'v2', 'v10'];
    const seen = new Map<string, number>();
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 300; i++) await registry.use(names[i % names.length]);
      writing = false;
    })();
    const readers = Array.from({ length: 4 }, async () => {
      while (writing) {
        const raw = await readFile(join(registry.root, 'current'), 'utf8');
        const version = await registry.currentVersion();
        for (const read of [raw.trim(), version ?? 'null']) seen.set(read, (seen.get(read) ?? 0) + 1);
      }
    });
    await Promise.all([writer, ...readers]);
    assert.deepEqual([...seen.keys()].filter((read) => !names.includes(read)), [], 'a read saw something that is not a version');
    assert.ok([...seen.values()].reduce((a, b) => a + b, 0) > 100, 'the readers should have read many times');
    assert.equal(await registry.currentVersion(), names[299 % names.length]);
    // No temporary pointer files are left behind.
    assert.deepEqual((await readdir(registry.root)).sort(), ['current', 'v1', 'v10', 'v2']);
  });

  it('never modifies a published version folder when switching', async () => {
    const registry = await registryWith('immutable', ['v1', 'v2']);
    const before = { v1: await snapshot(registry.dirOf('v1')), v2: await snapshot(registry.dirOf('v2')) };
    for (const version of ['v1', 'v2', 'v1', 'v2']) await registry.use(version);
    assert.deepEqual({ v1: await snapshot(registry.dirOf('v1')), v2: await snapshot(registry.dirOf('v2')) }, before);
  });
});
