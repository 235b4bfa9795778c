import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type App, createApp } from '../../src/core/app.js';
import { loadConfig } from '../../src/core/config.js';
import { ModelRegistry } from '../../src/core/serving/model-registry.js';
import { silentLogger } from '../../src/log.js';
import { initModel } from '../../src/model/files/model-dir.js';

/**
 * A real app in a scratch folder, as `tunebot start` builds it, with an untrained tiny model
 * live as v1 and an empty FAQ. The first start's fine-tune is left out: it takes many seconds
 * and the local adapter's tests need a live model, not a trained one.
 */
export interface ScratchApp {
  readonly app: App;
  close(): Promise<void>;
}

export async function createScratchApp(): Promise<ScratchApp> {
  const dir = await mkdtemp(join(tmpdir(), 'tunebot-local-'));
  const modelDir = join(dir, 'models');
  const registry = new ModelRegistry(modelDir);
  await initModel(join(dir, 'new-model'), 'tiny', 0);
  await registry.publish(join(dir, 'new-model'), 'v1');
  await registry.use('v1');
  const config = loadConfig({ TUNEBOT_MODEL_DIR: modelDir, TUNEBOT_STORAGE_URL: `sqlite://${join(dir, 't.db')}`, LOG_LEVEL: 'silent' });
  const app = await createApp(config, silentLogger);
  return {
    app,
    async close() {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
