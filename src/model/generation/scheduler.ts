import type { Logger } from '../../log.js';
import { ModelError } from '../errors.js';
import { type Gpt2Decoder, type NextTokenScores, type RepetitionPenalty, SeenTokens } from '../runtime/decoder.js';
import type { BatchKvCache } from '../runtime/kv-cache.js';
import type { Tokenizer } from '../files/tokenizer.js';
import type { ResolvedGenerationOptions } from './options.js';
import { TextStream } from './text-stream.js';
import { TokenPicker } from './token-picker.js';

export type FinishReason = 'eos' | 'stop' | 'length' | 'context' | 'aborted';

export interface GenerationResult {
  readonly finishReason: FinishReason;
  readonly promptTokens: number;
  readonly generatedTokens: number;
}

export interface GenerationRequest {
  readonly promptIds: readonly number[];
  readonly options: ResolvedGenerationOptions;
  readonly onText: (text: string) => void;
  readonly onEnd: (result: GenerationResult) => void;
  readonly onError: (error: unknown) => void;
}

export interface SubmittedRequest {
  cancel(): void;
}

interface ActiveSequence {
  readonly request: GenerationRequest;
  readonly tokens: number[];
  /** Its repetition penalty, over the distinct tokens of `tokens`. */
  readonly penalty: RepetitionPenalty;
  readonly picker: TokenPicker;
  readonly stream: TextStream;
  /** Prompt tokens already in the prefill cache. */
  prefilled: number;
  generated: number;
  cancelled: boolean;
}

/** Prompt tokens prefilled per loop iteration, across every joining request, unless set. */
export const DEFAULT_PREFILL_CHUNK_TOKENS = 256;

/**
 * How long the KV caches keep their buffers after the last request ends: requests that keep
 * coming reuse them (no fresh memory to lay out and fault in on every burst); an idle model
 * gives them back.
 */
export const CACHE_RELEASE_MS = 30_000;

/**
 * Dynamic batching with chunked prefill. Requests that arrive while others decode wait for the
 * next step boundary. Each loop iteration feeds the prefill batch at most `prefillChunkTokens`
 * prompt tokens in one run, shared equally between its sequences, before the decode step, so
 * the decoding sequences keep producing tokens while a long prompt goes in. Prompts go in in
 * the order they came: a waiting request joins the prefill batch only while every sequence
 * already in it still gets the rest of its prompt in this chunk, so a joiner never holds back
 * one that came before it (a burst of 8 prompts of 512 tokens: the first answer starts after
 * 2 chunks, not 16), and prompts short enough to share one chunk go in together. A sequence
 * whose prompt is in samples its first token and moves to the decode batch (one copy of its own
 * cache); a finished or cancelled one leaves at the next step boundary. Each keeps its own
 * token picker and stream.
 *
 * The loop, once per iteration:
 *   1. drop the sequences that were cancelled, waiting, prefilling or decoding;
 *   2. admit waiting requests into the prefill batch, in order, as above and while the batch
 *      has room;
 *   3. run one prefill chunk for the prefill batch; the sequences it completes sample their
 *      first token and join the decode batch;
 *   4. run one decode step for the decode batch and sample each sequence's next token;
 *   5. yield to the event loop, so new requests and cancels arrive between steps.
 */
export class GenerationScheduler {
  private readonly waiting: ActiveSequence[] = [];
  /** Slot i of each cache holds the i-th sequence of its list. */
  private readonly prefilling: ActiveSequence[] = [];
  private readonly decoding: ActiveSequence[] = [];
  private readonly prefillCache: BatchKvCache;
  private readonly decodeCache: BatchKvCache;
  private running = false;
  private stopped: Promise<void> = Promise.resolve();
  private cacheRelease: NodeJS.Timeout | undefined;

  constructor(
    private readonly decoder: Gpt2Decoder,
    private readonly tokenizer: Tokenizer,
    private readonly maxBatchSize: number,
    private readonly logger: Logger,
    private readonly prefillChunkTokens = DEFAULT_PREFILL_CHUNK_TOKENS,
  ) {
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) throw new ModelError('OPTIONS_INVALID', `maxBatchSize must be an integer >= 1, got ${maxBatchSize}`);
    if (!Number.isInteger(prefillChunkTokens) || prefillChunkTokens < 1) {
      throw new ModelError('OPTIONS_INVALID', `prefillChunkTokens must be an integer >= 1, got ${prefillChunkTokens}`);
    }
    this.prefillCache = decoder.newBatchCache();
    this.decodeCache = decoder.newBatchCache();
  }

  /** Queues a request; a prompt that is empty or leaves no room to generate is refused here, with nothing queued. */
  submit(request: GenerationRequest): SubmittedRequest {
    const { options, promptIds } = request;
    const context = this.decoder.config.n_positions;
    if (promptIds.length === 0) throw new ModelError('OPTIONS_INVALID', 'the prompt is empty; start it with <|endoftext|> to generate from nothing');
    if (promptIds.length >= context) {
      throw new ModelError('OPTIONS_INVALID', `a prompt of ${promptIds.length} tokens leaves no room to generate in a context of ${context}; cut it to at most ${context - 1}`);
    }
    const sequence: ActiveSequence = {
      request,
      tokens: [...promptIds],
      penalty: { penalty: options.repetitionPenalty, seen: new SeenTokens(promptIds) },
      picker: new TokenPicker(options),
      stream: new TextStream((id) => this.tokenizer.tokenBytes(id), options.stop),
      prefilled: 0,
      generated: 0,
      cancelled: false,
    };
    this.waiting.push(sequence);
    clearTimeout(this.cacheRelease);
    if (!this.running) this.stopped = this.loop();
    return {
      cancel: () => {
        sequence.cancelled = true;
      },
    };
  }

  /** Settles once the loop has stopped: no run is in progress or about to start. */
  idle(): Promise<void> {
    return this.stopped;
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      // Requests that arrive together (one burst of messages) are all queued before the first admission.
      await yieldToEvents();
      while (this.waiting.length > 0 || this.prefilling.length > 0 || this.decoding.length > 0) {
        // 1. drop cancelled sequences
        for (let i = this.waiting.length - 1; i >= 0; i--) {
          if (this.waiting[i].cancelled) this.end(this.waiting.splice(i, 1)[0], 'aborted');
        }
        for (const [batch, cache] of [[this.prefilling, this.prefillCache], [this.decoding, this.decodeCache]] as const) {
          for (let slot = batch.length - 1; slot >= 0; slot--) {
            if (batch[slot].cancelled) this.retire(batch, cache, slot, 'aborted');
          }
        }
        // 2. admit
        while (this.waiting.length > 0 && this.prefilling.length + this.decoding.length < this.maxBatchSize && this.admitsAnother()) {
          const sequence = this.waiting.shift() as ActiveSequence;
          this.prefillCache.add(sequence.tokens.length);
          this.prefilling.push(sequence);
        }
        // 3. one prefill chunk
        if (this.prefilling.length > 0) await this.prefillChunk();
        // 4. one decode step
        if (this.decoding.length > 0) await this.decodeStep();
        // 5. let messages in
        await yieldToEvents();
      }
    } finally {
      this.running = false;
      this.cacheRelease = setTimeout(() => {
        for (const cache of [this.prefillCache, this.decodeCache]) if (cache.batchSize === 0) cache.release();
      }, CACHE_RELEASE_MS).unref();
    }
  }

  /**
   * Gives the decode cache room for every sequence that will be in it once the prompts going in
   * and waiting now are in (as many as the batch takes): joining one by one, they would lay it
   * out anew at each doubling, in fresh memory (at 8 x 576 columns, 100 ms a time on top of
   * faulting it in). Called as prefilled sequences join, so the first of a burst has had its
   * first token before the burst's room is laid out.
   */
  private makeDecodeRoom(): void {
    const coming = [...this.decoding, ...this.prefilling, ...this.waiting].slice(0, this.maxBatchSize);
    this.decodeCache.makeRoom(coming.length, Math.max(...coming.map((sequence) => sequence.tokens.length)) + 1);
  }

  /**
   * Whether one more sequence may join the prefill batch: when it is empty, or when every
   * sequence in it still gets the rest of its prompt from this chunk's share at one more.
   */
  private admitsAnother(): boolean {
    const share = this.chunkShare(this.prefilling.length + 1);
    return this.prefilling.every((sequence) => sequence.tokens.length - sequence.prefilled <= share);
  }

  /** Prompt tokens each of `sequences` gets from one prefill chunk. */
  private chunkShare(sequences: number): number {
    return Math.max(1, Math.floor(this.prefillChunkTokens / sequences));
  }

  private async prefillChunk(): Promise<void> {
    const width = this.chunkShare(this.prefilling.length);
    const chunks = this.prefilling.map((sequence) => sequence.tokens.slice(sequence.prefilled, sequence.prefilled + width));
    const rows = await this.run(this.prefilling, this.prefillCache, chunks);
    if (!rows) return;
    // Every sequence whose prompt is in samples its first token; those that go on join the
    // decode batch together (one layout of its cache for the whole burst), then all leave the
    // prefill batch, highest slot first so the slots still to go keep their indices.
    const completed: { slot: number; finish: FinishReason | null }[] = [];
    this.prefilling.forEach((sequence, slot) => {
      sequence.prefilled += chunks[slot].length;
      if (sequence.prefilled === sequence.tokens.length) completed.push({ slot, finish: this.accept(sequence, rows[slot]) });
    });
    const joining = completed.filter(({ finish }) => finish === null).map(({ slot }) => slot);
    if (joining.length > 0) this.makeDecodeRoom();
    this.decodeCache.adopt(this.prefillCache, joining);
    for (const slot of joining) this.decoding.push(this.prefilling[slot]);
    for (const { slot, finish } of completed.reverse()) {
      if (finish) this.retire(this.prefilling, this.prefillCache, slot, finish);
      else this.remove(this.prefilling, this.prefillCache, slot);
    }
  }

  private async decodeStep(): Promise<void> {
    const lastTokens = this.decoding.map((sequence) => [sequence.tokens[sequence.tokens.length - 1]]);
    const rows = await this.run(this.decoding, this.decodeCache, lastTokens);
    if (!rows) return;
    const finishes = this.decoding.map((sequence, slot) => this.accept(sequence, rows[slot]));
    for (let slot = this.decoding.length - 1; slot >= 0; slot--) {
      const finish = finishes[slot];
      if (finish) this.retire(this.decoding, this.decodeCache, slot, finish);
    }
  }

  /**
   * One decoder run for a batch, each sequence under its repetition penalty, with whole rows of
   * logits only if a sequence needs them; on failure every sequence of the batch fails and
   * leaves, and null comes back.
   */
  private async run(batch: ActiveSequence[], cache: BatchKvCache, tokens: number[][]): Promise<NextTokenScores[] | null> {
    try {
      return await this.decoder.forward(cache, tokens, {
        wholeRows: batch.some((sequence) => sequence.picker.needsWholeRow),
        penalties: batch.map((sequence) => sequence.penalty),
      });
    } catch (error) {
      this.logger.error({ err: error, batch: batch.length }, 'decoder run failed; failing the batch');
      for (let slot = batch.length - 1; slot >= 0; slot--) {
        const sequence = batch[slot];
        this.remove(batch, cache, slot);
        sequence.request.onError(error);
      }
      return null;
    }
  }

  /** Picks the next token, streams the text; returns why the sequence ends, if it does. */
  private accept(sequence: ActiveSequence, scores: NextTokenScores): FinishReason | null {
    const token = sequence.picker.pick(scores);
    sequence.tokens.push(token);
    sequence.penalty.seen.add(token);
    sequence.generated++;
    if (token === this.tokenizer.eosTokenId) return 'eos';
    const text = sequence.stream.push(token);
    if (text) sequence.request.onText(text);
    if (sequence.stream.hasStopped) return 'stop';
    if (sequence.generated >= sequence.request.options.maxNewTokens) return 'length';
    // The newest token must still fit at a position below n_positions to be fed back.
    if (sequence.tokens.length >= this.decoder.config.n_positions) return 'context';
    return null;
  }

  private retire(batch: ActiveSequence[], cache: BatchKvCache, slot: number, reason: FinishReason): void {
    const sequence = batch[slot];
    this.remove(batch, cache, slot);
    this.end(sequence, reason);
  }

  /** Takes `slot` out of the cache and its list alike: the last slot moves into its place. */
  private remove(batch: ActiveSequence[], cache: BatchKvCache, slot: number): void {
    const moved = cache.remove(slot);
    const last = batch.pop() as ActiveSequence;
    if (moved !== null) batch[slot] = last;
  }

  private end(sequence: ActiveSequence, reason: FinishReason): void {
    if (reason !== 'aborted') {
      const rest = sequence.stream.finish();
      if (rest) sequence.request.onText(rest);
    }
    sequence.request.onEnd({
      finishReason: reason,
      promptTokens: sequence.request.promptIds.length,
      generatedTokens: sequence.generated,
    });
  }
}

function yieldToEvents(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
