import type { webApi } from '@slack/bolt';
import { BoundedMap } from '../../core/bounded-map.js';
import type { Logger } from '../../log.js';

/**
 * Who a Slack user is, from users.info: the name the engine greets and whether Slack calls
 * them a workspace admin or owner (the platform admin right). Cached briefly, so a burst of
 * messages costs one call, and a demoted admin loses the right within `ttlMs`.
 */
export interface SlackUser {
  readonly displayName: string;
  readonly isAdmin: boolean;
}

export const USER_CACHE_TTL_MS = 60_000;
export const MAX_CACHED_USERS = 10_000;

export class SlackUsers {
  private readonly cache: BoundedMap<string, { user: SlackUser; expires: number }>;

  constructor(
    private readonly client: webApi.WebClient,
    private readonly logger: Logger,
    private readonly ttlMs: number = USER_CACHE_TTL_MS,
    maxUsers: number = MAX_CACHED_USERS,
  ) {
    this.cache = new BoundedMap(maxUsers);
  }

  /** How many users are cached. */
  get size(): number {
    return this.cache.size;
  }

  /** A user users.info cannot describe (deleted, or a missing users:read scope) is no admin. */
  async lookup(userId: string): Promise<SlackUser> {
    const now = Date.now();
    const cached = this.cache.get(userId);
    if (cached && cached.expires > now) return cached.user;
    let user: SlackUser;
    try {
      const { user: info } = await this.client.users.info({ user: userId });
      user = {
        displayName: info?.profile?.display_name || info?.real_name || info?.name || userId,
        isAdmin: info?.is_admin === true || info?.is_owner === true,
      };
    } catch (error) {
      this.logger.warn({ err: error, user: userId }, 'users.info failed; treating the user as no admin');
      return { displayName: userId, isAdmin: false };
    }
    // Every entry lives for ttlMs, so the map's order of setting is also expiry order.
    this.cache.set(userId, { user, expires: now + this.ttlMs });
    this.cache.dropOldestWhile((entry) => entry.expires <= now);
    return user;
  }
}
