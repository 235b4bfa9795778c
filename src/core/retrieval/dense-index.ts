/**
 * Dense retrieval over FAQ entries: each entry is the vectors of its phrasings (its question
 * and its alternates), and its similarity to a query is the best cosine among them, so an entry
 * is as close as its closest wording. Brute force: an FAQ is hundreds of entries, not millions.
 */
export interface DenseEntry {
  readonly id: string;
  /** One vector per phrasing, the question first; any length, the same dimension for all. */
  readonly vectors: readonly Float32Array[];
}

export interface DenseHit {
  readonly entryId: string;
  /** Cosine similarity in -1..1: the best over the entry's phrasings. */
  readonly similarity: number;
  /** Which phrasing it was: 0 the question, 1.. its alternates. */
  readonly phrasing: number;
}

export class DenseIndex {
  readonly dimension: number;
  private readonly ids: readonly string[];
  /** Per entry, its phrasings' vectors scaled to unit length. */
  private readonly phrasings: readonly Float32Array[][];

  /** Immutable: when the FAQ changes, build a new one. */
  constructor(entries: readonly DenseEntry[]) {
    this.dimension = entries[0]?.vectors[0]?.length ?? 0;
    const seen = new Set<string>();
    for (const entry of entries) {
      if (seen.has(entry.id)) throw new RangeError(`entry ${entry.id} is in the dense index twice`);
      seen.add(entry.id);
      if (entry.vectors.length === 0) throw new RangeError(`entry ${entry.id} has no phrasing vectors`);
    }
    this.ids = entries.map((entry) => entry.id);
    this.phrasings = entries.map((entry) => entry.vectors.map((vector, i) => this.unit(vector, `entry ${entry.id} phrasing ${i}`)));
  }

  get size(): number {
    return this.ids.length;
  }

  /** Every entry's similarity to the query, in the order the entries were given. */
  similarities(query: Float32Array): DenseHit[] {
    const q = this.unit(query, 'the query vector');
    return this.ids.map((entryId, entry) => {
      let best = { similarity: -Infinity, phrasing: 0 };
      this.phrasings[entry].forEach((vector, phrasing) => {
        const similarity = dot(q, vector);
        if (similarity > best.similarity) best = { similarity, phrasing };
      });
      return { entryId, ...best };
    });
  }

  /** The k most similar entries, best first; equal similarities keep the entries' order. */
  search(query: Float32Array, k: number): DenseHit[] {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`k must be a whole number >= 0, got ${k}`);
    return this.similarities(query)
      .map((hit, order) => ({ hit, order }))
      .sort((a, b) => b.hit.similarity - a.hit.similarity || a.order - b.order)
      .slice(0, k)
      .map(({ hit }) => hit);
  }

  /** How alike the questions of entries a and b (positions) are: their cosine. */
  questionSimilarity(a: number, b: number): number {
    return dot(this.phrasings[a][0], this.phrasings[b][0]);
  }

  private unit(vector: Float32Array, what: string): Float32Array {
    if (this.dimension !== 0 && vector.length !== this.dimension) {
      throw new RangeError(`${what} has ${vector.length} dimensions, the index ${this.dimension}`);
    }
    const norm = Math.sqrt(dot(vector, vector));
    if (!(norm > 0) || !Number.isFinite(norm)) throw new RangeError(`${what} has no direction (its length is ${norm})`);
    return vector.map((v) => v / norm);
  }
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}
