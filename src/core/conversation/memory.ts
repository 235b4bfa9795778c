import { StorageError } from '../storage/storage-error.js';
import type { Turn, TurnLog } from '../storage/turn-log.js';

export type { Turn } from '../storage/turn-log.js';

/**
 * Where a user's memory lives: a user has one memory per platform and workspace (a Discord
 * server, a Slack workspace), shared by every channel and thread there.
 */
export interface MemoryScope {
  platform: string;
  workspace: string;
}

export interface MemorySettings {
  /** Turns older than this are dropped; undefined keeps them until they are trimmed. */
  ttlMs?: number;
  /** The most turns kept per user; older ones are trimmed on append. */
  maxStoredTurns: number;
}

export const DEFAULT_MEMORY_SETTINGS: MemorySettings = { ttlMs: 7 * 24 * 60 * 60 * 1000, maxStoredTurns: 200 };

/** How much history a prompt has room for. */
export interface TurnWindow {
  maxTokens: number;
  maxTurns: number;
  countTokens: (text: string) => number;
}

/** Everything memory holds about one user, as plain JSON (the `export` command's answer). */
export interface UserExport {
  platform: string;
  workspace: string;
  userId: string;
  exportedAt: string;
  turns: Array<{ role: Turn['role']; text: string; at: string }>;
}

/**
 * The storage key of a user: `platform:workspace:userId`, each part percent-encoded so that a
 * ":" inside an id cannot make two users share a key (Slack "T0123:U456" stays one part).
 */
export function userKey(scope: MemoryScope, userId: string): string {
  for (const [name, value] of [['platform', scope.platform], ['workspace', scope.workspace], ['userId', userId]] as const) {
    if (typeof value !== 'string' || value === '') throw new StorageError('TURN_INVALID', `${name} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return [scope.platform, scope.workspace, userId].map(encodeURIComponent).join(':');
}

/** Per-user conversation memory over a TurnLog: record, window for a prompt, forget, export. */
export class ConversationMemory {
  readonly #turns: TurnLog;
  readonly #settings: MemorySettings;

  constructor(turns: TurnLog, settings: MemorySettings = DEFAULT_MEMORY_SETTINGS) {
    if (!Number.isInteger(settings.maxStoredTurns) || settings.maxStoredTurns < 1) {
      throw new StorageError('TURN_INVALID', `maxStoredTurns must be a whole number of at least 1, got ${settings.maxStoredTurns}`);
    }
    if (settings.ttlMs !== undefined && !(Number.isFinite(settings.ttlMs) && settings.ttlMs > 0)) {
      throw new StorageError('TURN_INVALID', `ttlMs must be a positive number of milliseconds, got ${settings.ttlMs}`);
    }
    this.#turns = turns;
    this.#settings = { ...settings };
  }

  /**
   * Appends one turn. The append is issued before this returns its promise, so the turns of
   * concurrent calls are stored in the order the calls were made.
   */
  recordTurn(scope: MemoryScope, userId: string, turn: Turn): Promise<void> {
    try {
      const key = userKey(scope, userId);
      checkTurn(turn);
      return this.#turns.append(key, { role: turn.role, text: turn.text, at: turn.at }, {
        ttlMs: this.#settings.ttlMs,
        keepLast: this.#settings.maxStoredTurns,
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The newest turns that fit both `maxTurns` and `maxTokens`, oldest first. Counting stops at
   * the first turn that does not fit, so the window is always an unbroken tail of the talk.
   */
  async recentTurns(scope: MemoryScope, userId: string, window: TurnWindow): Promise<Turn[]> {
    const key = userKey(scope, userId);
    for (const name of ['maxTokens', 'maxTurns'] as const) {
      if (!Number.isInteger(window[name]) || window[name] < 0) {
        throw new StorageError('TURN_INVALID', `${name} must be a whole number of at least 0, got ${window[name]}`);
      }
    }
    if (window.maxTurns === 0 || window.maxTokens === 0) return [];
    const newestFirst = (await this.#turns.recent(key, window.maxTurns)).reverse();
    const fitting: Turn[] = [];
    let tokens = 0;
    for (const turn of newestFirst) {
      const count = window.countTokens(turn.text);
      if (!Number.isFinite(count) || count < 0) {
        throw new StorageError('TURN_INVALID', `countTokens must return a count of at least 0, got ${count}`);
      }
      if (tokens + count > window.maxTokens) break;
      tokens += count;
      fitting.push(turn);
    }
    return fitting.reverse();
  }

  /** Drops every turn of this user in this scope; used by `forget` and an admin's `forget <user>`. */
  async forget(scope: MemoryScope, userId: string): Promise<void> {
    await this.#turns.delete(userKey(scope, userId));
  }

  async exportUser(scope: MemoryScope, userId: string): Promise<UserExport> {
    const turns = await this.#turns.all(userKey(scope, userId));
    return {
      platform: scope.platform,
      workspace: scope.workspace,
      userId,
      exportedAt: new Date().toISOString(),
      turns: turns.map((turn) => ({ role: turn.role, text: turn.text, at: new Date(turn.at).toISOString() })),
    };
  }
}

function checkTurn(turn: Turn): void {
  if (turn.role !== 'user' && turn.role !== 'assistant') {
    throw new StorageError('TURN_INVALID', `turn role must be "user" or "assistant", got ${JSON.stringify(turn.role)}`);
  }
  if (typeof turn.text !== 'string') throw new StorageError('TURN_INVALID', `turn text must be a string, got ${typeof turn.text}`);
  if (!Number.isSafeInteger(turn.at) || turn.at < 0) {
    throw new StorageError('TURN_INVALID', `turn time "at" must be milliseconds since the epoch, got ${turn.at}`);
  }
}
