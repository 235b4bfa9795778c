import { join } from 'node:path';
import type { ModelRegistry } from '../../src/core/serving/model-registry.js';
import { presetConfig } from '../../src/model/config.js';
import { saveModel } from '../../src/model/files/model-dir.js';
import { defaultGenerationConfig } from '../../src/model/files/model-files.js';
import { initWeights } from '../../src/model/files/weights.js';

/**
 * Publishes an untrained tiny model as `version` (not made live). With `context` 1024 a
 * generation can run long enough to be caught mid-way; the preset's own is 128 tokens.
 */
export async function publishTinyVersion(registry: ModelRegistry, version: string, seed: number, context = presetConfig('tiny').n_positions): Promise<void> {
  const staging = join(registry.root, `.staging-${version}`);
  const config = { ...presetConfig('tiny'), n_positions: context };
  await saveModel(staging, { config, weights: initWeights(config, seed), generationConfig: defaultGenerationConfig(config) });
  await registry.publish(staging, version);
}
