import type { Database, Statement } from 'better-sqlite3';
import { checkAppendOptions, expiresAt, parseStoredTurn, type AppendOptions, type Turn, type TurnLog } from './turn-log.js';

/**
 * Turns in one SQLite table. `seq` (AUTOINCREMENT, so never reused) is the arrival order;
 * each append is one IMMEDIATE transaction (insert, then drop this user's expired turns and
 * those beyond `keepLast`), which SQLite's file lock makes atomic across processes too.
 */
export class SqliteTurnLog implements TurnLog {
  readonly #keyPrefix: string;
  readonly #appendTransaction: (userKey: string, turn: Turn, options: AppendOptions) => void;
  readonly #recent: Statement<[string, number, number], unknown>;
  readonly #all: Statement<[string, number], unknown>;
  readonly #delete: Statement<[string]>;

  /** The caller owns `db` and closes it. `keyPrefix` goes before every user key. */
  constructor(db: Database, keyPrefix: string) {
    this.#keyPrefix = keyPrefix;
    db.exec(`
      CREATE TABLE IF NOT EXISTS turns (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        user_key TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        text TEXT NOT NULL,
        at INTEGER NOT NULL,
        expires INTEGER
      );
      CREATE INDEX IF NOT EXISTS turns_by_user ON turns (user_key, seq);
    `);
    const insert = db.prepare<[string, string, string, number, number | null]>(
      'INSERT INTO turns (user_key, role, text, at, expires) VALUES (?, ?, ?, ?, ?)',
    );
    // With fewer than keepLast + 1 turns the subquery is NULL and `seq <= NULL` keeps every row.
    const trim = db.prepare<{ userKey: string; now: number; keepLast: number }>(`
      DELETE FROM turns WHERE user_key = :userKey AND (
        expires <= :now
        OR seq <= (SELECT seq FROM turns WHERE user_key = :userKey ORDER BY seq DESC LIMIT 1 OFFSET :keepLast)
      )`);
    const append = db.transaction((userKey: string, turn: Turn, options: AppendOptions) => {
      insert.run(userKey, turn.role, turn.text, turn.at, expiresAt(turn, options.ttlMs));
      trim.run({ userKey, now: Date.now(), keepLast: options.keepLast });
    });
    // IMMEDIATE takes the write lock at BEGIN, so two processes never both read then write.
    this.#appendTransaction = append.immediate;
    const live = '(expires IS NULL OR expires > ?)';
    this.#recent = db.prepare(
      `SELECT role, text, at FROM (SELECT seq, role, text, at FROM turns WHERE user_key = ? AND ${live} ORDER BY seq DESC LIMIT ?) ORDER BY seq`,
    );
    this.#all = db.prepare(`SELECT role, text, at FROM turns WHERE user_key = ? AND ${live} ORDER BY seq`);
    this.#delete = db.prepare('DELETE FROM turns WHERE user_key = ?');
  }

  async append(userKey: string, turn: Turn, options: AppendOptions): Promise<void> {
    checkAppendOptions(options);
    this.#appendTransaction(this.#keyPrefix + userKey, turn, options);
  }

  async recent(userKey: string, limit: number): Promise<Turn[]> {
    if (limit <= 0) return [];
    return this.#recent.all(this.#keyPrefix + userKey, Date.now(), limit).map((row) => parseStoredTurn(row, 'SQLite table turns'));
  }

  async all(userKey: string): Promise<Turn[]> {
    return this.#all.all(this.#keyPrefix + userKey, Date.now()).map((row) => parseStoredTurn(row, 'SQLite table turns'));
  }

  async delete(userKey: string): Promise<void> {
    this.#delete.run(this.#keyPrefix + userKey);
  }
}
