/**
 * The KV cache of the runtime graph, kept in JavaScript (see gpt2-graph.ts for why).
 *
 * Per layer, keys and values are both stored [slots, H, columns, D]. The graph scores the past
 * as q @ Transpose(keys), which ONNX Runtime fuses into one MatMul that reads the keys where
 * they lie, faster than q @ keys stored transposed [slots, H, D, columns] (at batch 8 and 256
 * columns, 1.7-2.3 ms a step against 3.4-3.9 in its profile), and a new token's key is one
 * contiguous row to write like its value. A slot's tokens fill rows [0, length) of its
 * blocks; the rows after are zero and masked out. The run's own keys and values come out of
 * the graph ([B, H, T, D]) and are written in afterwards.
 *
 * Slots are the outer dimension and preallocated: a sequence joins as an empty slot at the
 * end (nothing moves), and one that leaves is replaced by the last slot (one sequence's block
 * moves). So a join or a leave costs one sequence, never the batch.
 *
 * Every run reads all the columns, so they grow 64 at a time with the longest sequence (at 8
 * sequences of 520-576 tokens, a step took 32-35 ms at 576 columns against 41-42 at 1024).
 * The buffers are allocated apart from that: their slots and columns double, so fresh memory
 * (slow to fault in here) is rarely touched, and the columns grow inside them by moving each
 * block in place. A burst of joiners grows them once (adopt). When the last sequence leaves,
 * the buffers stay for the next batch until release().
 */

/** The step in which the columns grow and shrink, and the fewest a non-empty cache holds. */
const COLUMN_STEP = 64;

export class BatchKvCache {
  private keys: Float32Array[];
  private values: Float32Array[];
  /** What the buffers hold room for. */
  private slotCapacity = 0;
  private columnCapacity = 0;
  /** Columns per slot as laid out now: at most columnCapacity. */
  private columns = 0;
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

  /** Columns per slot in the past feeds: the `past_sequence_length` of the next run. */
  get capacity(): number {
    return this.columns;
  }

  /** Tokens held for the sequence in `slot`: its next position id. */
  sequenceLength(slot: number): number {
    this.checkSlot(slot);
    return this.lengths[slot];
  }

  /**
   * Adds an empty slot at the end, with room for the `columns` positions it will hold when known
   * (a prompt's length); returns its index. Nothing already cached moves.
   */
  add(columns = 0): number {
    this.reserve(this.batchSize + 1, columns);
    this.lengths.push(0);
    return this.lengths.length - 1;
  }

  /**
   * Adds slots holding copies of `source`'s slots `from` (sequences moving between caches, e.g.
   * from prefill to decode), in that order; returns their indices here. Room for all of them
   * is made at once, so a burst of joiners lays the buffers out at most once, and only their
   * own columns are copied.
   */
  adopt(source: BatchKvCache, from: readonly number[]): number[] {
    if (source.heads !== this.heads || source.headSize !== this.headSize || source.layers !== this.layers) {
      throw new RangeError('a slot moves only between caches of the same model');
    }
    if (from.length === 0) return [];
    const lengths = from.map((slot) => source.sequenceLength(slot));
    this.reserve(this.batchSize + from.length, Math.max(...lengths) + 1);
    const { heads: H, headSize: D } = this;
    const P = this.columns;
    const sourceP = source.columns;
    return from.map((sourceSlot, i) => {
      const slot = this.lengths.length;
      const length = lengths[i];
      this.lengths.push(length);
      for (let layer = 0; layer < this.layers; layer++) {
        for (const [sourceBuffer, buffer] of [
          [source.keys[layer], this.keys[layer]],
          [source.values[layer], this.values[layer]],
        ]) {
          for (let h = 0; h < H; h++) {
            const at = (sourceSlot * H + h) * sourceP * D;
            buffer.set(sourceBuffer.subarray(at, at + length * D), (slot * H + h) * P * D);
          }
        }
      }
      return slot;
    });
  }

  /**
   * Allocates room for `slots` slots of `columns` columns, for sequences known to be coming
   * (prompts queued behind a prefill): they then join without a re-layout each, while the runs
   * until then still read only the columns laid out now.
   */
  makeRoom(slots: number, columns: number): void {
    const columnCapacity = this.allocatedColumnsFor(this.columnsFor(columns));
    if (slots <= this.slotCapacity && columnCapacity <= this.columnCapacity) return;
    this.relayout(Math.max(slots, this.slotCapacity), Math.max(columnCapacity, this.columnCapacity), this.columns);
  }

  /**
   * Removes `slot` by moving the last slot into its place; returns the index the moved slot
   * had (the old last index), or null when `slot` was the last.
   */
  remove(slot: number): number | null {
    this.checkSlot(slot);
    const last = this.batchSize - 1;
    const blockSize = this.heads * this.headSize * this.columns;
    for (let layer = 0; layer < this.layers; layer++) {
      for (const buffer of [this.keys[layer], this.values[layer]]) {
        if (slot !== last) buffer.copyWithin(slot * blockSize, last * blockSize, (last + 1) * blockSize);
        // the vacated block is where the next sequence joins: its columns must read as zero
        buffer.fill(0, last * blockSize, (last + 1) * blockSize);
      }
    }
    this.lengths[slot] = this.lengths[last];
    this.lengths.pop();
    this.shrink();
    return slot === last ? null : last;
  }

  /** past.N.key: [B, H, capacity, D], a view of the filled slots. */
  pastKeys(layer: number): Float32Array {
    return this.keys[layer].subarray(0, this.batchSize * this.heads * this.headSize * this.columns);
  }

  /** past.N.value: [B, H, capacity, D]. */
  pastValues(layer: number): Float32Array {
    return this.values[layer].subarray(0, this.batchSize * this.heads * this.headSize * this.columns);
  }

  /**
   * attention_mask [B, capacity + width] for a run where slot b brings `counts[b]` new tokens,
   * left-padded to `width`: each slot's own past columns and its real new tokens.
   */
  attentionMask(counts: readonly number[], width: number): BigInt64Array {
    this.checkCounts(counts, width);
    const columns = this.columns + width;
    const mask = new BigInt64Array(this.batchSize * columns);
    this.lengths.forEach((length, slot) => {
      mask.fill(1n, slot * columns, slot * columns + length);
      mask.fill(1n, (slot + 1) * columns - counts[slot], (slot + 1) * columns);
    });
    return mask;
  }

  /**
   * Writes a run's new.N.key/value ([B, H, width, D] each, left-padded as in attentionMask):
   * slot b's last `counts[b]` positions go into its next columns.
   */
  append(newKeys: readonly Float32Array[], newValues: readonly Float32Array[], counts: readonly number[], width: number): void {
    this.checkCounts(counts, width);
    const longest = Math.max(0, ...this.lengths.map((length, slot) => length + counts[slot]));
    if (longest > this.maxLength) {
      throw new RangeError(`the KV cache is full: ${this.maxLength} positions; finish sequences before they pass the context`);
    }
    this.reserve(this.batchSize, longest);
    const { heads: H, headSize: D } = this;
    const P = this.columns;
    for (let layer = 0; layer < this.layers; layer++) {
      for (const [from, buffer] of [
        [newKeys[layer], this.keys[layer]],
        [newValues[layer], this.values[layer]],
      ]) {
        this.lengths.forEach((column, slot) => {
          const count = counts[slot];
          const padding = width - count;
          for (let h = 0; h < H; h++) {
            const block = slot * H + h;
            const source = (block * width + padding) * D;
            const target = (block * P + column) * D;
            // A decode step copies 2 x layers x slots x heads rows of D floats: for one row an
            // element loop beats making a subarray; a prefill chunk's rows are long enough for set.
            if (count === 1) {
              for (let i = 0; i < D; i++) buffer[target + i] = from[source + i];
            } else {
              buffer.set(from.subarray(source, source + count * D), target);
            }
          }
        });
      }
    }
    this.lengths.forEach((length, slot) => (this.lengths[slot] = length + counts[slot]));
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.batchSize) {
      throw new RangeError(`no slot ${slot} in a batch of ${this.batchSize}`);
    }
  }

  private checkCounts(counts: readonly number[], width: number): void {
    if (counts.length !== this.batchSize || counts.some((count) => !Number.isInteger(count) || count < 1 || count > width)) {
      throw new RangeError(`a run over ${this.batchSize} slots takes 1 to ${width} new tokens per slot, got [${counts.join(', ')}]`);
    }
  }

  /** Lets the buffers go. Only an empty cache can: one with sequences still needs them. */
  release(): void {
    if (this.batchSize > 0) throw new RangeError(`the cache holds ${this.batchSize} sequences; release it once they have left`);
    this.relayout(0, 0, 0);
  }

  /**
   * Makes room for `slots` slots of `columns` columns. An empty cache keeps what its last batch
   * allocated (zeroed as each sequence left): the next burst of joiners reuses it, with no fresh
   * memory to fault in (at 8 slots x 256 columns, about 150 MB that took 200-360 ms to touch
   * here), and takes only the columns it needs (when known: a prompt's length). It is allocated
   * anew when too small, or when its columns are four times what joins needs.
   */
  private reserve(slots: number, columns: number): void {
    const needed = columns > 0 ? this.columnsFor(columns) : 0;
    if (this.batchSize === 0 && columns > 0) {
      const allocated = this.allocatedColumnsFor(needed);
      if (4 * allocated <= this.columnCapacity) {
        this.relayout(Math.max(slots, this.slotCapacity), allocated, needed);
        return;
      }
      this.columns = Math.min(needed, this.columnCapacity); // nothing to move: every block is zero
    }
    if (slots <= this.slotCapacity && needed <= this.columnCapacity) {
      if (needed > this.columns) this.restride(needed);
      return;
    }
    this.relayout(
      slots <= this.slotCapacity ? this.slotCapacity : Math.max(slots, 2 * this.slotCapacity),
      needed <= this.columnCapacity ? this.columnCapacity : this.allocatedColumnsFor(Math.max(needed, 2 * this.columnCapacity)),
      Math.max(needed, this.columns),
    );
  }

  /**
   * After a leave: the columns shrink to what the longest sequence left needs plus one step, so
   * a batch at a boundary grows back at most once per COLUMN_STEP tokens; the buffers are
   * allocated anew, smaller, once they hold four times the columns in use. An empty cache keeps
   * its layout until the next join or release.
   */
  private shrink(): void {
    if (this.batchSize === 0) return;
    const needed = this.columnsFor(Math.max(...this.lengths) + 1 + COLUMN_STEP);
    if (needed >= this.columns) return;
    if (4 * needed <= this.columnCapacity) this.relayout(this.slotCapacity, this.allocatedColumnsFor(needed), needed);
    else this.restride(needed);
  }

  /** `columns` rounded up to a whole COLUMN_STEP, at most the context. */
  private columnsFor(columns: number): number {
    return Math.min(Math.max(COLUMN_STEP, Math.ceil(columns / COLUMN_STEP) * COLUMN_STEP), this.maxLength);
  }

  /** COLUMN_STEP doubled until it holds `columns`, at most the context. */
  private allocatedColumnsFor(columns: number): number {
    let capacity = COLUMN_STEP;
    while (capacity < columns) capacity *= 2;
    return Math.min(capacity, this.maxLength);
  }

  /**
   * Lays each (slot, head) block out with `columns` columns in the buffers it has, moving the
   * blocks in place: growing, the last first, each onto room its successors have left, and the
   * rows it gains zeroed; shrinking, the first first, and the room freed at the end zeroed.
   */
  private restride(columns: number): void {
    const D = this.headSize;
    const from = this.columns;
    const blocks = this.batchSize * this.heads;
    const kept = Math.min(from, columns) * D;
    for (const buffer of [...this.keys, ...this.values]) {
      if (columns > from) {
        for (let block = blocks - 1; block >= 0; block--) {
          buffer.copyWithin(block * columns * D, block * from * D, block * from * D + kept);
          buffer.fill(0, block * columns * D + kept, (block + 1) * columns * D);
        }
      } else {
        for (let block = 0; block < blocks; block++) buffer.copyWithin(block * columns * D, block * from * D, block * from * D + kept);
        buffer.fill(0, blocks * columns * D, blocks * from * D);
      }
    }
    this.columns = columns;
  }

  /** New buffers with room for `slotCapacity` x `columnCapacity`, laid out with `columns` columns. */
  private relayout(slotCapacity: number, columnCapacity: number, columns: number): void {
    const D = this.headSize;
    const from = this.columns;
    const kept = Math.min(from, columns) * D;
    const blocks = this.batchSize * this.heads;
    const size = slotCapacity * this.heads * D * columnCapacity;
    const laidOut = (buffer: Float32Array) => {
      const to = new Float32Array(size);
      for (let block = 0; block < blocks; block++) to.set(buffer.subarray(block * from * D, block * from * D + kept), block * columns * D);
      return to;
    };
    this.keys = this.keys.map(laidOut);
    this.values = this.values.map(laidOut);
    this.slotCapacity = slotCapacity;
    this.columnCapacity = columnCapacity;
    this.columns = columns;
  }
}
