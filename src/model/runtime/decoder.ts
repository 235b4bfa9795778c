import { type Gpt2Config, headSize } from '../config.js';
import { BatchKvCache } from './kv-cache.js';
import { type ModelSession, type SessionTensor, feedTensor } from './session.js';

/** A row's SAMPLING_CANDIDATES highest logits (gpt2-graph.ts), ids ascending. */
export interface Candidates {
  readonly ids: Int32Array;
  readonly logits: Float32Array;
}

/** What a run gives for choosing a slot's next token. */
export interface NextTokenScores {
  readonly candidates: Candidates;
  /** The whole row of logits [V], when the run was asked for it (see forward); else null. */
  readonly logits: Float32Array | null;
}

/** A slot's repetition penalty (1: none) and the tokens it lowers: every distinct token of the sequence so far. */
export interface RepetitionPenalty {
  readonly penalty: number;
  readonly seen: SeenTokens;
}

/**
 * A sequence's distinct tokens in the order first seen, kept as the int64 the graph's
 * seen_ids takes, so a run copies them instead of converting hundreds of ids per slot and step.
 */
export class SeenTokens {
  private readonly seen = new Set<number>();
  private ids = new BigInt64Array(64);

  constructor(tokens: Iterable<number> = []) {
    for (const token of tokens) this.add(token);
  }

  get size(): number {
    return this.seen.size;
  }

  add(token: number): void {
    if (this.seen.has(token)) return;
    if (this.seen.size === this.ids.length) {
      const grown = new BigInt64Array(2 * this.ids.length);
      grown.set(this.ids);
      this.ids = grown;
    }
    this.ids[this.seen.size] = BigInt(token);
    this.seen.add(token);
  }

  /** The tokens, as int64, first seen first. */
  get int64(): BigInt64Array {
    return this.ids.subarray(0, this.seen.size);
  }
}

export interface ForwardOptions {
  /** Whether each slot's whole row of logits comes back (default true), not only its candidates. */
  readonly wholeRows?: boolean;
  /** One per slot; left out, no slot is penalized. */
  readonly penalties?: readonly RepetitionPenalty[];
}

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
   * their keys and values to `cache` and returns, for each slot, the scores after its last new
   * token, under its repetition penalty: its candidates, and with `wholeRows` its whole row of
   * logits (views into one [B, V] buffer; at 8 slots, 1.6 MB that onnxruntime-node copies out
   * of every run that asks).
   */
  async forward(cache: BatchKvCache, tokens: readonly (readonly number[])[], { wholeRows = true, penalties }: ForwardOptions = {}): Promise<NextTokenScores[]> {
    const batch = cache.batchSize;
    if (tokens.length !== batch) throw new RangeError(`a batch of ${batch} slots takes ${batch} token lists, got ${tokens.length}`);
    if (penalties && penalties.length !== batch) throw new RangeError(`a batch of ${batch} slots takes ${batch} penalties, got ${penalties.length}`);
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
      ...penaltyFeeds(penalties ?? [], batch),
    };
    const pastDims = [batch, H, pastLength, D];
    for (let layer = 0; layer < this.config.n_layer; layer++) {
      feeds[`past.${layer}.key`] = feedTensor('float32', cache.pastKeys(layer), pastDims);
      feeds[`past.${layer}.value`] = feedTensor('float32', cache.pastValues(layer), pastDims);
    }
    const layers = Array.from({ length: this.config.n_layer }, (_, layer) => layer);
    const cacheOutputs = layers.flatMap((layer) => [`new.${layer}.key`, `new.${layer}.value`]);
    const outputs = await this.session.run(feeds, { only: [...cacheOutputs, 'candidates.logits', 'candidates.ids', ...(wholeRows ? ['logits'] : [])] });
    cache.append(
      layers.map((layer) => outputs[`new.${layer}.key`].data as Float32Array),
      layers.map((layer) => outputs[`new.${layer}.value`].data as Float32Array),
      counts,
      width,
    );
    const vocab = this.config.vocab_size;
    const logits = wholeRows ? (outputs.logits.data as Float32Array) : null;
    const candidateLogits = outputs['candidates.logits'].data as Float32Array;
    const candidateIds = outputs['candidates.ids'].data as BigInt64Array;
    const count = candidateLogits.length / batch;
    return Array.from({ length: batch }, (_, slot) => ({
      candidates: byId(candidateIds.subarray(slot * count, (slot + 1) * count), candidateLogits.subarray(slot * count, (slot + 1) * count)),
      logits: logits && logits.subarray(slot * vocab, (slot + 1) * vocab),
    }));
  }

  /** Runs a whole prompt in a cache of its own, unpenalized; returns the last position's logits and the cache. */
  async prefill(ids: readonly number[]): Promise<{ logits: Float32Array; cache: BatchKvCache }> {
    const cache = this.newBatchCache();
    cache.add();
    const [{ logits }] = await this.forward(cache, [ids]);
    return { logits: logits as Float32Array, cache };
  }
}

/**
 * seen_ids [B, S] and repetition_penalty [B] (gpt2-graph.ts). S is the most distinct tokens a
 * penalized slot has seen; a slot with fewer repeats its first, and an unpenalized slot (penalty
 * 1) holds token 0, whose logit a penalty of 1 leaves as it is.
 */
function penaltyFeeds(penalties: readonly RepetitionPenalty[], batch: number): Record<string, SessionTensor> {
  const penalized = (p: RepetitionPenalty) => p.penalty !== 1 && p.seen.size > 0;
  const seenLength = Math.max(1, ...penalties.filter(penalized).map((p) => p.seen.size));
  const seenIds = new BigInt64Array(batch * seenLength);
  const values = new Float32Array(batch).fill(1);
  penalties.forEach((p, slot) => {
    if (!penalized(p)) return;
    values[slot] = p.penalty;
    const start = slot * seenLength;
    seenIds.set(p.seen.int64, start);
    seenIds.fill(seenIds[start], start + p.seen.size, start + seenLength);
  });
  return {
    seen_ids: feedTensor('int64', seenIds, [batch, seenLength]),
    repetition_penalty: feedTensor('float32', values, [batch]),
  };
}

/** TopK's candidates (best first) reordered by id, as the samplers walk a whole row. */
function byId(topIds: BigInt64Array, logits: Float32Array): Candidates {
  const ids = Array.from(topIds, Number);
  const order = ids.map((_, i) => i).sort((a, b) => ids[a] - ids[b]);
  return {
    ids: Int32Array.from(order, (i) => ids[i]),
    logits: Float32Array.from(order, (i) => logits[i]),
  };
}
