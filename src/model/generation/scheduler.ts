import type { Logger } from '../../log.js';
import type { Gpt2Decoder } from '../runtime/decoder.js';
import type { BatchKvCache } from '../runtime/kv-cache.js';
import type { Tokenizer } from '../files/tokenizer.js';
import { type LogitsProcessor, logitsProcessors } from './logits-processors.js';
import type { ResolvedGenerationOptions } from './options.js';
import { type Sampler, greedySampler, multinomialSampler } from './sampler.js';
import { TextStream } from './text-stream.js';

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
  readonly processors: LogitsProcessor[];
  readonly sampler: Sampler;
  readonly stream: TextStream;
  generated: number;
  cancelled: boolean;
}

/**
 * Dynamic batching: every active request advances in one shared decode step. A new request
 * is prefilled on its own between steps and then joins the batch; a finished or cancelled
 * one leaves at the next step boundary. Each keeps its own processors, sampler and stream.
 *
 * The loop, once per iteration:
 *   1. admit one waiting request: prefill, sample its first token, join the batch;
 *   2. drop the sequences that finished or were cancelled;
 *   3. run one decode step for the batch and sample each sequence's next token;
 *   4. yield to the event loop, so new requests and cancels arrive between steps.
 */
export class GenerationScheduler {
  private readonly waiting: ActiveSequence[] = [];
  private readonly active: ActiveSequence[] = [];
  private readonly cache: BatchKvCache;
  private running = false;
  private stopped: Promise<void> = Promise.resolve();

  constructor(
    private readonly decoder: Gpt2Decoder,
    private readonly tokenizer: Tokenizer,
    private readonly maxBatchSize: number,
    private readonly logger: Logger,
  ) {
    this.cache = decoder.newBatchCache();
  }

  submit(request: GenerationRequest): SubmittedRequest {
    const { options } = request;
    const sequence: ActiveSequence = {
      request,
      tokens: [...request.promptIds],
      processors: logitsProcessors(options),
      sampler: options.greedy ? greedySampler() : multinomialSampler(options.seed),
      stream: new TextStream((id) => this.tokenizer.tokenBytes(id), options.stop),
      generated: 0,
      cancelled: false,
    };
    this.waiting.push(sequence);
    if (!this.running) this.stopped = this.loop();
    return {
      cancel: () => {
        sequence.cancelled = true;
      },
    };
  }

  /** Settles once the loop has stopped: no decode step is running or about to run. */
  idle(): Promise<void> {
    return this.stopped;
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.waiting.length > 0 || this.active.length > 0) {
        // 1. admit
        if (this.waiting.length > 0 && this.active.length < this.maxBatchSize) {
          await this.admit(this.waiting.shift() as ActiveSequence);
        }
        // 2. drop cancelled sequences
        for (let slot = this.active.length - 1; slot >= 0; slot--) {
          if (this.active[slot].cancelled) this.retire(slot, 'aborted');
        }
        // 3. one decode step for the batch
        if (this.active.length > 0) await this.step();
        // 4. let messages in
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.running = false;
    }
  }

  private async admit(sequence: ActiveSequence): Promise<void> {
    if (sequence.cancelled) {
      this.end(sequence, 'aborted');
      return;
    }
    try {
      const { logits, cache } = await this.decoder.prefill(sequence.tokens);
      const finish = this.accept(sequence, logits);
      if (finish) {
        this.end(sequence, finish);
        return;
      }
      this.cache.join(cache);
      this.active.push(sequence);
    } catch (error) {
      sequence.request.onError(error);
    }
  }

  private async step(): Promise<void> {
    const lastTokens = this.active.map((sequence) => sequence.tokens[sequence.tokens.length - 1]);
    let rows: Float32Array[];
    try {
      rows = await this.decoder.step(this.cache, lastTokens);
    } catch (error) {
      this.logger.error({ err: error, batch: this.active.length }, 'decode step failed; failing the batch');
      for (let slot = this.active.length - 1; slot >= 0; slot--) {
        const [sequence] = this.active.splice(slot, 1);
        this.cache.leave(slot);
        sequence.request.onError(error);
      }
      return;
    }
    const finishes = this.active.map((sequence, slot) => this.accept(sequence, rows[slot]));
    for (let slot = this.active.length - 1; slot >= 0; slot--) {
      const finish = finishes[slot];
      if (finish) this.retire(slot, finish);
    }
  }

  /** Processes logits, samples, streams the text; returns why the sequence ends, if it does. */
  private accept(sequence: ActiveSequence, logits: Float32Array): FinishReason | null {
    for (const process of sequence.processors) process(sequence.tokens, logits);
    const token = sequence.sampler.next(logits);
    sequence.tokens.push(token);
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

  private retire(slot: number, reason: FinishReason): void {
    const [sequence] = this.active.splice(slot, 1);
    this.cache.leave(slot);
    this.end(sequence, reason);
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
