import type { Logger } from '../../log.js';
import type { LiveModel } from './live-model.js';
import type { ModelRegistry } from './model-registry.js';
import type { SharedRedis } from '../storage/open-storage.js';
import type { RedisClient } from '../storage/redis-turn-log.js';

/**
 * Makes a version live: loaded here first (a version that fails to load never becomes the
 * pointer), then the registry's `current` pointer, then, when instances share a Redis, a
 * "model changed" message on pub/sub, on which every other instance (and model server) loads
 * it too. An instance that starts later reads the pointer.
 */
export class ModelRollout {
  private subscriber: RedisClient | null = null;
  private following: Promise<unknown> = Promise.resolve();
  private readonly channel: string;

  constructor(
    private readonly registry: ModelRegistry,
    private readonly model: LiveModel,
    /** The shared Redis and the key namespace; null for one instance alone. */
    private readonly shared: SharedRedis | null,
    private readonly logger: Logger,
  ) {
    this.channel = `${shared?.namespace ?? 'tunebot'}:model-changed`;
  }

  async goLive(version: string): Promise<void> {
    await this.registry.requireVersion(version);
    await this.model.swapTo(version);
    await this.registry.use(version);
    if (this.shared) await this.shared.redis.publish(this.channel, version);
  }

  /**
   * Follows the versions other processes make live, until close(). Each message is a hint: the
   * pointer is read again, so messages that arrive out of order still end on the latest version.
   */
  async follow(): Promise<void> {
    if (!this.shared || this.subscriber) return;
    const subscriber = this.shared.redis.duplicate();
    subscriber.on('error', (error: Error) => this.logger.warn({ err: error }, 'model-change subscription: Redis connection error'));
    await subscriber.connect();
    await subscriber.subscribe(this.channel, () => {
      this.following = this.following.then(() => this.catchUp()).catch((error: unknown) => this.logger.error({ err: error }, 'could not load the version another instance made live'));
    });
    this.subscriber = subscriber;
  }

  /** Loads the registry's current version when it is not the one serving here. */
  async catchUp(): Promise<void> {
    const current = await this.registry.currentVersion();
    if (current && current !== this.model.version) {
      this.logger.info({ version: current, previous: this.model.version }, 'another instance made a version live: loading it');
      await this.model.swapTo(current);
    }
  }

  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = null;
    if (subscriber?.isOpen) await subscriber.close();
    await this.following;
  }
}
