import { type Gpt2Config, headSize } from '../config.js';
import { BatchKvCache } from './kv-cache.js';
import { type ModelSession, type SessionTensor, feedTensor } from './session.js';

/**
 * Runs the runtime GPT-2 graph (gpt2-graph.ts, kind "runtime") over the slots of a
 * BatchKvCache: one session.run takes any number of new tokens per slot (a decode step is one
 * each; a prefill chunk several), left-padded to the longest so every row's last column is
 * its own last token, the one whose logits come back.
 */
export class Gpt2Decoder {
  constructor(
    private readonly session: ModelSession,
    readonly config: Gpt2Config,
  ) {}

  newBatchCache(): BatchKvCache {
    return new BatchKvCache(this.config.n_layer, this.config.n_head, headSize(this.config), this.config.n_positions);
  }

  /**
   * Feeds `tokens[slot]` (at least one) to each slot of `cache`, after what it holds. Appends
   * their keys and values to `cache` and returns each slot's logits after its last new token
   * (views into one [B, V] buffer).
   */
  async forward(cache: BatchKvCache, tokens: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const batch = cache.batchSize;
    if (tokens.length !== batch) throw new RangeError(`a batch of ${batch} slots takes ${batch} token lists, got ${tokens.length}`);
    const counts = tokens.map((row) => row.length);
    const width = Math.max(0, ...counts);
    const ids = new BigInt64Array(batch * width);
    const positions = new BigInt64Array(batch * width);
    tokens.forEach((row, slot) => {
      const past = cache.sequenceLength(slot);
      if (past + row.length > this.config.n_positions) {
        throw new RangeError(`slot ${slot} holds ${past} tokens; ${row.length} more pass the context of ${this.config.n_positions}`);
      }
      const padding = width - row.length;
      row.forEach((token, t) => {
        ids[slot * width + padding + t] = BigInt(token);
        positions[slot * width + padding + t] = BigInt(past + t);
      });
    });
    const pastLength = cache.capacity;
    const H = this.config.n_head;
    const D = headSize(this.config);
    const feeds: Record<string, SessionTensor> = {
      input_ids: feedTensor('int64', ids, [batch, width]),
      position_ids: feedTensor('int64', positions, [batch, width]),
      attention_mask: feedTensor('int64', cache.attentionMask(counts, width), [batch, pastLength + width]),
    };
    const pastDims = [batch, H, pastLength, D];
    for (let layer = 0; layer < this.config.n_layer; layer++) {
      feeds[`past.${layer}.key`] = feedTensor('float32', cache.pastKeys(layer), pastDims);
      feeds[`past.${layer}.value`] = feedTensor('float32', cache.pastValues(layer), pastDims);
    }
    const outputs = await this.session.run(feeds);
    const layers = Array.from({ length: this.config.n_layer }, (_, layer) => layer);
    cache.append(
      layers.map((layer) => outputs[`new.${layer}.key`].data as Float32Array),
      layers.map((layer) => outputs[`new.${layer}.value`].data as Float32Array),
      counts,
      width,
    );
    const logits = outputs.logits.data as Float32Array;
    const vocab = this.config.vocab_size;
    return Array.from({ length: batch }, (_, slot) => logits.subarray(slot * vocab, (slot + 1) * vocab));
  }

  /** Runs a whole prompt in a cache of its own; returns the last position's logits and the cache. */
  async prefill(ids: readonly number[]): Promise<{ logits: Float32Array; cache: BatchKvCache }> {
    const cache = this.newBatchCache();
    cache.add();
    const [logits] = await this.forward(cache, [ids]);
    return { logits, cache };
  }
}
