import { type Gpt2Config, headSize } from '../config.js';
import { BatchKvCache, type SequenceCache } from './kv-cache.js';
import { type ModelSession, type SessionTensor, feedTensor } from './session.js';

/**
 * Runs the runtime GPT-2 graph (gpt2-graph.ts, kind "runtime"): a prefill for one new
 * sequence, and decode steps for a whole batch that share one session.run.
 */
export class Gpt2Decoder {
  constructor(
    private readonly session: ModelSession,
    readonly config: Gpt2Config,
  ) {}

  newBatchCache(): BatchKvCache {
    return new BatchKvCache(this.config.n_layer, this.config.n_head, headSize(this.config), this.config.n_positions);
  }

  /** Runs a whole prompt (batch 1, no past); returns the last position's logits and its cache. */
  async prefill(ids: readonly number[]): Promise<{ logits: Float32Array; cache: SequenceCache }> {
    const length = ids.length;
    const empty = new Float32Array(0);
    const outputs = await this.run({
      ids: BigInt64Array.from(ids, BigInt),
      positions: BigInt64Array.from({ length }, (_, i) => BigInt(i)),
      mask: new BigInt64Array(length).fill(1n),
      batch: 1,
      newLength: length,
      pastLength: 0,
      pastKeys: () => empty,
      pastValues: () => empty,
    });
    return {
      logits: outputs.logits,
      cache: { length, keys: outputs.newKeys, values: outputs.newValues },
    };
  }

  /**
   * One decode step: `tokens[slot]` is each sequence's latest token. Appends the step's keys
   * and values to `cache` and returns each slot's logits (views into one [B, V] buffer).
   */
  async step(cache: BatchKvCache, tokens: readonly number[]): Promise<Float32Array[]> {
    const batch = cache.batchSize;
    const lengths = Array.from({ length: batch }, (_, slot) => cache.sequenceLength(slot));
    const longest = Math.max(...lengths);
    if (longest + 1 > this.config.n_positions) {
      throw new RangeError(`a sequence of ${longest} tokens cannot grow past the context of ${this.config.n_positions}`);
    }
    const outputs = await this.run({
      ids: BigInt64Array.from(tokens, BigInt),
      positions: BigInt64Array.from(lengths, BigInt),
      mask: cache.nextAttentionMask(),
      batch,
      newLength: 1,
      pastLength: cache.capacity,
      pastKeys: (layer) => cache.pastKeys(layer),
      pastValues: (layer) => cache.pastValues(layer),
    });
    cache.append(outputs.newKeys, outputs.newValues);
    const vocab = this.config.vocab_size;
    return Array.from({ length: batch }, (_, slot) => outputs.logits.subarray(slot * vocab, (slot + 1) * vocab));
  }

  private async run(input: {
    ids: BigInt64Array;
    positions: BigInt64Array;
    mask: BigInt64Array;
    batch: number;
    newLength: number;
    pastLength: number;
    pastKeys: (layer: number) => Float32Array;
    pastValues: (layer: number) => Float32Array;
  }): Promise<{ logits: Float32Array; newKeys: Float32Array[]; newValues: Float32Array[] }> {
    const { batch, newLength, pastLength } = input;
    const H = this.config.n_head;
    const D = headSize(this.config);
    const feeds: Record<string, SessionTensor> = {
      input_ids: feedTensor('int64', input.ids, [batch, newLength]),
      position_ids: feedTensor('int64', input.positions, [batch, newLength]),
      attention_mask: feedTensor('int64', input.mask, [batch, pastLength + newLength]),
    };
    for (let layer = 0; layer < this.config.n_layer; layer++) {
      feeds[`past.${layer}.key`] = feedTensor('float32', input.pastKeys(layer), [batch, H, D, pastLength]);
      feeds[`past.${layer}.value`] = feedTensor('float32', input.pastValues(layer), [batch, H, pastLength, D]);
    }
    const outputs = await this.session.run(feeds);
    const layers = Array.from({ length: this.config.n_layer }, (_, layer) => layer);
    return {
      logits: outputs.logits.data as Float32Array,
      newKeys: layers.map((layer) => outputs[`new.${layer}.key`].data as Float32Array),
      newValues: layers.map((layer) => outputs[`new.${layer}.value`].data as Float32Array),
    };
  }
}
