/**
 * The KV cache of the runtime graph, kept in JavaScript (see gpt2-graph.ts for why).
 *
 * Layout per layer, for keys and values alike: time-major rows [column, slot, H*D]. A batch
 * of sequences of different lengths is right-aligned: every sequence ends at the last column
 * and the columns before its start are padding, masked out by the attention mask. So one
 * decode step appends one column for all slots, and the filled columns [0, width) are a
 * single contiguous prefix of the buffer: the past feed, with no copy.
 *
 * Sequences join (after their own prefill) and leave between steps; each change re-lays the
 * buffer once (O(cache)), which also drops padding columns that no sequence needs any more.
 */

/** One sequence's cache straight from its prefill: per layer, rows [T, H*D]. */
export interface SequenceCache {
  readonly length: number;
  readonly keys: readonly Float32Array[];
  readonly values: readonly Float32Array[];
}

interface SlotSource {
  readonly length: number;
  /** Row `column` (0 = the sequence's first token) of layer `layer`, keys or values. */
  row(layer: number, which: 'keys' | 'values', column: number): Float32Array;
}

export class BatchKvCache {
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];
  private capacity = 0;
  private slotStarts: number[] = [];
  private filled = 0;

  /** rowSize = H * D; maxLength = n_positions, the most columns a sequence can use. */
  constructor(
    private readonly layers: number,
    private readonly rowSize: number,
    private readonly maxLength: number,
  ) {
    // An empty cache is laid out like one whose slots all left, so past() is an empty view.
    this.relayout([], 0);
  }

  get batchSize(): number {
    return this.slotStarts.length;
  }

  get width(): number {
    return this.filled;
  }

  /** Tokens held for the sequence in `slot`: its next position id. */
  sequenceLength(slot: number): number {
    return this.filled - this.slotStarts[slot];
  }

  /** Adds a prefilled sequence as the last slot; returns its slot index. */
  join(sequence: SequenceCache): number {
    const sources = this.currentSources();
    sources.push({
      length: sequence.length,
      row: (layer, which, column) =>
        (which === 'keys' ? sequence.keys : sequence.values)[layer].subarray(column * this.rowSize, (column + 1) * this.rowSize),
    });
    this.relayout(sources, 0);
    return this.batchSize - 1;
  }

  /** Removes `slot`; slots after it move down by one. */
  leave(slot: number): void {
    const sources = this.currentSources();
    sources.splice(slot, 1);
    this.relayout(sources, 0);
  }

  /** The filled prefix of one layer's cache: a view of [width, B, H*D] floats. */
  past(layer: number, which: 'keys' | 'values'): Float32Array {
    const buffer = which === 'keys' ? this.keys[layer] : this.values[layer];
    return buffer.subarray(0, this.filled * this.batchSize * this.rowSize);
  }

  /** attention_mask [B, width + 1] for the next step: 1 on each slot's own columns. */
  nextAttentionMask(): BigInt64Array {
    const columns = this.filled + 1;
    const mask = new BigInt64Array(this.batchSize * columns);
    this.slotStarts.forEach((start, slot) => mask.fill(1n, slot * columns + start, (slot + 1) * columns));
    return mask;
  }

  /** Appends one column from a decode step's new.N.key/value outputs ([1, B, H*D] each). */
  append(newKeys: readonly Float32Array[], newValues: readonly Float32Array[]): void {
    if (this.filled === this.maxLength) {
      throw new RangeError(`the KV cache is full: ${this.maxLength} positions; finish sequences before they pass the context`);
    }
    if (this.filled === this.capacity) this.relayout(this.currentSources(), 1);
    const offset = this.filled * this.batchSize * this.rowSize;
    for (let layer = 0; layer < this.layers; layer++) {
      this.keys[layer].set(newKeys[layer], offset);
      this.values[layer].set(newValues[layer], offset);
    }
    this.filled++;
  }

  private currentSources(): SlotSource[] {
    const batch = this.batchSize;
    const keys = this.keys;
    const values = this.values;
    return this.slotStarts.map((start, slot) => ({
      length: this.filled - start,
      row: (layer, which, column) => {
        const offset = ((start + column) * batch + slot) * this.rowSize;
        return (which === 'keys' ? keys : values)[layer].subarray(offset, offset + this.rowSize);
      },
    }));
  }

  /** Re-lays every slot right-aligned into fresh buffers with room for `spare` more columns. */
  private relayout(sources: readonly SlotSource[], spare: number): void {
    const batch = sources.length;
    const width = sources.reduce((widest, source) => Math.max(widest, source.length), 0);
    // Grow geometrically so appends rarely re-lay; never beyond what a sequence can use.
    const capacity = Math.min(this.maxLength, Math.max(16, 2 ** Math.ceil(Math.log2(width + spare + 1))));
    const fresh = () => Array.from({ length: this.layers }, () => new Float32Array(capacity * batch * this.rowSize));
    const keys = fresh();
    const values = fresh();
    sources.forEach((source, slot) => {
      const start = width - source.length;
      for (let column = 0; column < source.length; column++) {
        const offset = ((start + column) * batch + slot) * this.rowSize;
        for (let layer = 0; layer < this.layers; layer++) {
          keys[layer].set(source.row(layer, 'keys', column), offset);
          values[layer].set(source.row(layer, 'values', column), offset);
        }
      }
    });
    this.keys = keys;
    this.values = values;
    this.capacity = capacity;
    this.filled = width;
    this.slotStarts = sources.map((source) => width - source.length);
  }
}
