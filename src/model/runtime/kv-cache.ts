/**
 * The KV cache of the runtime graph, kept in JavaScript (see gpt2-graph.ts for why).
 *
 * Per layer, keys are stored transposed, [B, H, D, capacity], and values as [B, H, capacity, D]:
 * exactly the operands of the graph's two attention MatMuls (q @ K^T and p @ V), so each step
 * feeds the buffers as they are, with no concatenation or transpose of the past. A slot's
 * tokens fill columns [0, length) of its rows; the columns after are masked out. The step's
 * own key and value come out of the graph ([B, H, T, D]) and are written in afterwards.
 *
 * Slots are the outer dimension, so a sequence that joins is written into the next block and
 * one that leaves is closed up with one copyWithin. Capacity grows in chunks of columns.
 */

/** One sequence's cache straight from its prefill: per layer, [H, T, D] for keys and values. */
export interface SequenceCache {
  readonly length: number;
  readonly keys: readonly Float32Array[];
  readonly values: readonly Float32Array[];
}

/** Columns added at a time: masked padding stays under one chunk, regrowth is rare. */
const CAPACITY_CHUNK = 64;

export class BatchKvCache {
  private keys: Float32Array[];
  private values: Float32Array[];
  private slotCapacity = 0;
  private columnCapacity = 0;
  private readonly lengths: number[] = [];

  constructor(
    private readonly layers: number,
    private readonly heads: number,
    private readonly headSize: number,
    private readonly maxLength: number,
  ) {
    this.keys = Array.from({ length: layers }, () => new Float32Array(0));
    this.values = Array.from({ length: layers }, () => new Float32Array(0));
  }

  get batchSize(): number {
    return this.lengths.length;
  }

  /** Columns per slot in the past feeds: the `past_sequence_length` of the next step. */
  get capacity(): number {
    return this.columnCapacity;
  }

  /** Tokens held for the sequence in `slot`: its next position id. */
  sequenceLength(slot: number): number {
    return this.lengths[slot];
  }

  /** Adds a prefilled sequence as the last slot; returns its slot index. */
  join(sequence: SequenceCache): number {
    if (sequence.length >= this.maxLength) {
      throw new RangeError(`a sequence of ${sequence.length} tokens leaves no room in a context of ${this.maxLength}`);
    }
    this.reserve(this.batchSize + 1, sequence.length + 1);
    const slot = this.lengths.length;
    this.lengths.push(sequence.length);
    const { heads: H, headSize: D } = this;
    const P = this.columnCapacity;
    for (let layer = 0; layer < this.layers; layer++) {
      const keys = sequence.keys[layer];
      const values = sequence.values[layer];
      const keysT = this.keys[layer];
      const pastValues = this.values[layer];
      for (let h = 0; h < H; h++) {
        const block = slot * H + h;
        for (let t = 0; t < sequence.length; t++) {
          const source = (h * sequence.length + t) * D;
          pastValues.set(values.subarray(source, source + D), (block * P + t) * D);
          for (let d = 0; d < D; d++) keysT[(block * D + d) * P + t] = keys[source + d];
        }
      }
    }
    return slot;
  }

  /** Removes `slot`; slots after it move down by one. */
  leave(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.batchSize) {
      throw new RangeError(`no slot ${slot} in a batch of ${this.batchSize}`);
    }
    const blockSize = this.heads * this.headSize * this.columnCapacity;
    const end = this.batchSize * blockSize;
    for (let layer = 0; layer < this.layers; layer++) {
      this.keys[layer].copyWithin(slot * blockSize, (slot + 1) * blockSize, end);
      this.values[layer].copyWithin(slot * blockSize, (slot + 1) * blockSize, end);
      // the vacated last block is where the next sequence joins, and join writes only its own columns
      this.keys[layer].fill(0, end - blockSize, end);
      this.values[layer].fill(0, end - blockSize, end);
    }
    this.lengths.splice(slot, 1);
    this.shrink();
  }

  /** past.N.key: [B, H, D, capacity], a view of the filled slots. */
  pastKeys(layer: number): Float32Array {
    return this.keys[layer].subarray(0, this.batchSize * this.heads * this.headSize * this.columnCapacity);
  }

  /** past.N.value: [B, H, capacity, D]. */
  pastValues(layer: number): Float32Array {
    return this.values[layer].subarray(0, this.batchSize * this.heads * this.headSize * this.columnCapacity);
  }

  /** attention_mask [B, capacity + 1] for a one-token step: each slot's own columns and the new token. */
  nextAttentionMask(): BigInt64Array {
    const columns = this.columnCapacity + 1;
    const mask = new BigInt64Array(this.batchSize * columns);
    this.lengths.forEach((length, slot) => {
      mask.fill(1n, slot * columns, slot * columns + length);
      mask[slot * columns + this.columnCapacity] = 1n;
    });
    return mask;
  }

  /** Writes a one-token step's new.N.key/value ([B, H, 1, D] each) into each slot's next column. */
  append(newKeys: readonly Float32Array[], newValues: readonly Float32Array[]): void {
    const longest = Math.max(...this.lengths);
    if (longest + 1 > this.maxLength) {
      throw new RangeError(`the KV cache is full: ${this.maxLength} positions; finish sequences before they pass the context`);
    }
    this.reserve(this.batchSize, longest + 1);
    const { heads: H, headSize: D } = this;
    const P = this.columnCapacity;
    for (let layer = 0; layer < this.layers; layer++) {
      const keysT = this.keys[layer];
      const values = this.values[layer];
      this.lengths.forEach((column, slot) => {
        for (let h = 0; h < H; h++) {
          const block = slot * H + h;
          const source = block * D;
          values.set(newValues[layer].subarray(source, source + D), (block * P + column) * D);
          for (let d = 0; d < D; d++) keysT[(block * D + d) * P + column] = newKeys[layer][source + d];
        }
      });
    }
    for (let slot = 0; slot < this.lengths.length; slot++) this.lengths[slot]++;
  }

  /** Makes room for `slots` slots of `columns` columns, re-laying the buffers if they must grow. */
  private reserve(slots: number, columns: number): void {
    if (slots <= this.slotCapacity && columns <= this.columnCapacity) return;
    this.relayout(
      slots <= this.slotCapacity ? this.slotCapacity : Math.max(slots, 2 * this.slotCapacity),
      columns <= this.columnCapacity ? this.columnCapacity : columnsFor(columns, this.maxLength),
    );
  }

  /** After a sequence leaves: fewer columns when the longest remaining needs fewer chunks. */
  private shrink(): void {
    const needed = this.batchSize === 0 ? 0 : columnsFor(Math.max(...this.lengths) + 1, this.maxLength);
    if (needed < this.columnCapacity) this.relayout(this.batchSize === 0 ? 0 : this.slotCapacity, needed);
  }

  private relayout(slotCapacity: number, columnCapacity: number): void {
    const { heads: H, headSize: D } = this;
    const oldP = this.columnCapacity;
    const P = columnCapacity;
    const kept = Math.min(oldP, P);
    const blocks = this.batchSize * H;
    this.keys = this.keys.map((from) => {
      // each (slot, head, d) row of oldP columns becomes a row of P columns
      const to = new Float32Array(slotCapacity * H * D * P);
      for (let row = 0; row < blocks * D; row++) to.set(from.subarray(row * oldP, row * oldP + kept), row * P);
      return to;
    });
    this.values = this.values.map((from) => {
      // each (slot, head) block of oldP rows of D becomes a block of P rows
      const to = new Float32Array(slotCapacity * H * D * P);
      for (let block = 0; block < blocks; block++) to.set(from.subarray(block * oldP * D, (block * oldP + kept) * D), block * P * D);
      return to;
    });
    this.slotCapacity = slotCapacity;
    this.columnCapacity = columnCapacity;
  }
}

function columnsFor(columns: number, maxLength: number): number {
  return Math.min(maxLength, Math.ceil(columns / CAPACITY_CHUNK) * CAPACITY_CHUNK);
}
