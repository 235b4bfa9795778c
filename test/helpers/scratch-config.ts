import { join } from 'node:path';
import { loadConfig, type TunebotConfig } from '../../src/core/config.js';

/**
 * A configuration for an app in scratch folder `dir`: SQLite, CPU on one thread, short greedy
 * replies, no logs; `env` overrides any of it the way environment variables would.
 */
export function scratchConfig(dir: string, env: Record<string, string> = {}): TunebotConfig {
  return loadConfig({
    TUNEBOT_MODEL_DIR: join(dir, 'models'),
    TUNEBOT_STORAGE_URL: `sqlite://${join(dir, 'tunebot.db')}`,
    TUNEBOT_MODEL_EXECUTION_PROVIDER: 'cpu',
    TUNEBOT_MODEL_INTRA_OP_THREADS: '1',
    TUNEBOT_GENERATION_GREEDY: 'true',
    TUNEBOT_GENERATION_MAX_NEW_TOKENS: '8',
    LOG_LEVEL: 'silent',
    ...env,
  });
}
