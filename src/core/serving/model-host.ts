import type { Logger } from '../../log.js';
import { type GenerateOptions, type GenerationStream, LanguageModel, type LoadOptions } from '../../model/runtime/language-model.js';
import type { ModelInfo } from '../../model/runtime/worker-protocol.js';
import { type LiveModel, onFirstPiece } from './live-model.js';
import { BotMetrics } from '../metrics.js';

/**
 * The engine's model, swappable while it serves: a new version loads beside the old one,
 * new requests go to it from the moment it is ready, and the old one closes once its
 * requests in flight have finished. No request fails or is cut short by a swap.
 */
interface Loaded {
  readonly model: LanguageModel;
  readonly version: string;
  inFlight: number;
  retiring: boolean;
}

export class ModelHost implements LiveModel {
  private loaded: Loaded | null = null;
  private swapping: Promise<unknown> = Promise.resolve();

  constructor(
    /** Where a version's folder is: the registry's dirOf. */
    private readonly dirOf: (version: string) => string,
    private readonly loadOptions: LoadOptions,
    private readonly logger: Logger,
    private readonly metrics: BotMetrics = new BotMetrics(),
  ) {}

  get version(): string | null {
    return this.loaded?.version ?? null;
  }

  get info(): ModelInfo | null {
    return this.loaded?.model.info ?? null;
  }

  /** Loads `version` and makes it the model new requests use. Swaps run one after another. */
  swapTo(version: string): Promise<void> {
    const swap = this.swapping.then(() => this.load(this.dirOf(version), version));
    this.swapping = swap.catch(() => undefined);
    return swap;
  }

  private async load(dir: string, version: string): Promise<void> {
    // Every instance of a cluster may ask a shared model server for the version it already serves.
    if (this.loaded?.version === version) return;
    const model = await LanguageModel.load(dir, this.loadOptions);
    const previous = this.loaded;
    this.loaded = { model, version, inFlight: 0, retiring: false };
    this.logger.info({ version, provider: model.info.provider, previous: previous?.version ?? null }, 'model swapped in');
    if (previous) {
      previous.retiring = true;
      if (previous.inFlight === 0) await previous.model.close();
    }
  }

  /** Streams from the current model; null when no model is loaded yet. */
  generate(prompt: string, options: GenerateOptions): GenerationStream | null {
    const loaded = this.loaded;
    if (!loaded) return null;
    loaded.inFlight++;
    this.metrics.modelRequestsInFlight.inc();
    const started = performance.now();
    const stream = onFirstPiece(loaded.model.generate(prompt, options), () => this.metrics.firstPieceStreamed((performance.now() - started) / 1000));
    const release = () => {
      loaded.inFlight--;
      this.metrics.modelRequestsInFlight.dec();
      if (loaded.retiring && loaded.inFlight === 0) void loaded.model.close();
    };
    stream.result.then((result) => {
      this.metrics.generationFinished(result.generatedTokens, (performance.now() - started) / 1000);
      release();
    }, release);
    return stream;
  }

  async close(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = null;
    if (loaded) await loaded.model.close();
  }
}
