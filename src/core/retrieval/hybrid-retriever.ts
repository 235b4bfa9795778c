import type { Logger } from '../../log.js';
import type { TextEmbedder } from '../../model/embedding/sentence-embedder.js';
import { BoundedMap } from '../bounded-map.js';
import { type FaqEntry, phrasings } from '../faq/entry.js';
import { type DenseCalibration, calibrateFromIndex, calibratedSimilarity } from './dense-calibration.js';
import { DenseIndex } from './dense-index.js';
import { type FusionOptions, fuseRankings } from './fusion.js';

/** What the retriever needs of an entry: its id and its phrasings. */
export type RetrievableEntry = Pick<FaqEntry, 'id' | 'question' | 'alternates'>;

/** A lexical hit as BM25 gives it (bm25.ts's SearchHit; other fields are ignored). */
export interface LexicalHit<E> {
  readonly entry: E;
  /** 0..1 */
  readonly confidence: number;
  readonly score: number;
  /** Which phrasing matched best: 0 the question, 1.. its alternates. */
  readonly phrasing: number;
}

export interface RetrievalHit<E> {
  readonly entry: E;
  /** The fused confidence, 0..1 (fusion.ts); the answer policy's thresholds apply to it. */
  readonly confidence: number;
  /**
   * What hits are compared by (the answer policy's lead of the first over the second): the fused
   * confidence; BM25's own score when the dense side failed. The hits are in fusion order (ranks),
   * so a first hit less confident than the second has no lead: the two rankings disagree.
   */
  readonly score: number;
  /** Which phrasing matched best: BM25's when it listed the entry, else the closest by cosine. */
  readonly phrasing: number;
  /** BM25's confidence; 0 when BM25 did not list the entry. */
  readonly lexical: number;
  /** The calibrated dense confidence, 0..1, and the cosine it came from; null when the dense side failed. */
  readonly dense: number | null;
  readonly similarity: number | null;
}

export interface HybridRetrieverOptions {
  /** fusion.ts's weights; its defaults when left out. */
  readonly fusion?: FusionOptions;
  /** A fixed calibration; default: measured on each FAQ version (dense-calibration.ts). */
  readonly calibration?: DenseCalibration;
  /** Phrasing vectors kept across FAQ versions, so an edit embeds only what changed; default 20,000. */
  readonly cachedPhrasings?: number;
  readonly logger: Logger;
}

interface IndexedFaq {
  readonly index: DenseIndex;
  readonly calibration: DenseCalibration;
}

/** FAQ versions (one per scope, mostly) whose dense index is kept. */
const CACHED_INDEXES = 8;
const DEFAULT_CACHED_PHRASINGS = 20_000;

/**
 * BM25 + dense retrieval, fused. The caller (FaqStore.search) passes the query, the FAQ's
 * entries and BM25's hits; the retriever embeds the query, ranks every entry by its best
 * phrasing's cosine, calibrates that to 0..1, and fuses the two rankings (fusion.ts: ordered by
 * reciprocal rank fusion, each hit's confidence fused from BM25's and the dense one). The dense
 * index of an FAQ version is built once and kept. When embedding fails, BM25's hits come back
 * as they were (logged), so retrieval never fails for the dense side.
 */
export class HybridRetriever {
  private readonly logger: Logger;
  private readonly indexes = new BoundedMap<string, Promise<IndexedFaq>>(CACHED_INDEXES);
  private readonly phrasingVectors: BoundedMap<string, Float32Array>;

  constructor(
    private readonly embedder: TextEmbedder,
    private readonly options: HybridRetrieverOptions,
  ) {
    this.logger = options.logger;
    this.phrasingVectors = new BoundedMap(options.cachedPhrasings ?? DEFAULT_CACHED_PHRASINGS);
  }

  get dimension(): number {
    return this.embedder.dimension;
  }

  /** The k best entries, most confident first. Give BM25's hits for more than k (20, say): fusion can promote any of them. */
  async search<E extends RetrievableEntry>(query: string, entries: readonly E[], lexical: readonly LexicalHit<E>[], k: number): Promise<RetrievalHit<E>[]> {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`k must be a whole number >= 0, got ${k}`);
    if (entries.length === 0) return [];
    let dense: { similarity: number; confidence: number; phrasing: number }[];
    try {
      const [{ index, calibration }, [queryVector]] = await Promise.all([this.indexFor(entries), this.embedder.embed([query])]);
      dense = index.similarities(queryVector).map(({ similarity, phrasing }) => ({ similarity, phrasing, confidence: calibratedSimilarity(similarity, calibration) }));
    } catch (error) {
      this.logger.warn({ err: error }, 'dense retrieval failed; answering from BM25 alone');
      return lexical.slice(0, k).map(({ entry, confidence, score, phrasing }) => ({ entry, confidence, score, phrasing, lexical: confidence, dense: null, similarity: null }));
    }
    const positions = new Map(entries.map((entry, i) => [entry.id, i]));
    const lexicalPhrasing = new Map(lexical.map((hit) => [hit.entry.id, hit.phrasing]));
    // Most similar first; equal similarities keep the entries' order.
    const denseOrder = entries.map((_, i) => i).sort((a, b) => dense[b].similarity - dense[a].similarity || a - b);
    const fused = fuseRankings(
      lexical.map((hit) => ({ entryId: hit.entry.id, confidence: hit.confidence })),
      denseOrder.map((i) => ({ entryId: entries[i].id, confidence: dense[i].confidence })),
      this.options.fusion,
    );
    return fused.slice(0, k).map((hit) => {
      const position = positions.get(hit.entryId) as number;
      return {
        entry: entries[position],
        confidence: hit.confidence,
        score: hit.confidence,
        phrasing: lexicalPhrasing.get(hit.entryId) ?? dense[position].phrasing,
        lexical: hit.lexical,
        dense: hit.dense,
        similarity: dense[position].similarity,
      };
    });
  }

  /** Closes the embedder; a search afterwards answers from BM25 alone. */
  close(): Promise<void> {
    return this.embedder.close();
  }

  /** The dense index of these entries, built on first need (concurrent searches share the build). */
  private indexFor(entries: readonly RetrievableEntry[]): Promise<IndexedFaq> {
    // Entries and phrasings joined by characters that cleaned FAQ text never holds.
    const key = entries.map((entry) => [entry.id, ...phrasings(entry)].join('\u0001')).join('\u0000');
    let built = this.indexes.get(key);
    if (!built) {
      built = this.buildIndex(entries);
      this.indexes.set(key, built);
      built.catch(() => this.indexes.delete(key));
    }
    return built;
  }

  private async buildIndex(entries: readonly RetrievableEntry[]): Promise<IndexedFaq> {
    const texts = entries.map((entry) => phrasings(entry));
    const vectorOf = new Map<string, Float32Array>();
    for (const text of new Set(texts.flat())) {
      const cached = this.phrasingVectors.get(text);
      if (cached) vectorOf.set(text, cached);
    }
    const missing = [...new Set(texts.flat())].filter((text) => !vectorOf.has(text));
    const started = performance.now();
    const embedded = await this.embedder.embed(missing);
    missing.forEach((text, i) => {
      vectorOf.set(text, embedded[i]);
      this.phrasingVectors.set(text, embedded[i]);
    });
    const index = new DenseIndex(entries.map((entry, i) => ({ id: entry.id, vectors: texts[i].map((text) => vectorOf.get(text) as Float32Array) })));
    const calibration = this.options.calibration ?? calibrateFromIndex(index);
    this.logger.debug(
      { entries: entries.length, embedded: missing.length, ms: Math.round(performance.now() - started), calibration },
      'dense index built',
    );
    return { index, calibration };
  }
}
