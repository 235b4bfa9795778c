import type { Logger } from '../../log.js';
import type { Gpt2Config } from '../config.js';

/**
 * Fits a prompt to the context. An empty prompt starts from <|endoftext|>, as GPT-2 was
 * trained to begin documents. A prompt that leaves no room for maxNewTokens is cut from the
 * left (the end of a conversation matters most), but keeps at least half the context.
 */
export function fitPrompt(ids: readonly number[], maxNewTokens: number, config: Gpt2Config, logger: Logger): number[] {
  if (ids.length === 0) return [config.eos_token_id];
  const context = config.n_positions;
  const keep = Math.min(ids.length, Math.max(context - maxNewTokens, Math.ceil(context / 2)), context - 1);
  if (keep < ids.length) {
    logger.warn({ promptTokens: ids.length, kept: keep, context, maxNewTokens }, 'prompt is longer than the context allows; cut from the left');
  }
  return ids.slice(ids.length - keep);
}
