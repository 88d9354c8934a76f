/**
 * A Kysely driver for better-sqlite3 that never blocks the event loop on a locked database.
 *
 * better-sqlite3 is synchronous: with SQLite's own `busy_timeout` a write that meets another
 * process's write lock (the CLI, a backup) freezes every HTTP and WebSocket client until the lock
 * goes. Here SQLite waits only a few milliseconds; a busy statement is retried asynchronously with
 * backoff until `busyTimeoutMs`, so other work (and reads, which WAL never blocks) goes on.
 *
 * Also, unlike Kysely's SqliteDriver:
 * - transactions start with `BEGIN IMMEDIATE`, so the write lock is taken (and waited for) up front
 *   and a statement inside a transaction never meets SQLITE_BUSY halfway;
 * - a rollback after SQLite already rolled back by itself (SQLITE_FULL, SQLITE_IOERR) is skipped,
 *   so the caller sees the real error, not "cannot rollback - no transaction is active";
 * - statements outside a transaction do not queue behind each other, only behind an open transaction;
 * - statements are prepared once and kept (statement-cache.ts), rows built without better-sqlite3's
 *   per-column object writes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type BetterSqlite3 from 'better-sqlite3';
import { CompiledQuery, SelectQueryNode, type DatabaseConnection, type Driver, type QueryResult } from 'kysely';
import { StatementCache } from './statement-cache.js';
import type { WriteHealth } from './write-health.js';

/** Options of {@link RetryingSqliteDriver}. */
export interface RetryingSqliteDriverOptions {
  database: BetterSqlite3.Database;
  /** Longest time a statement keeps retrying while the database is locked, in ms. @default 5000 */
  busyTimeoutMs?: number;
  /** Told of every write's outcome (for /ready). @default none */
  health?: WriteHealth;
  /** Prepared statements kept, by SQL text. @default 256 */
  statementCacheSize?: number;
}

/** First pause after SQLITE_BUSY; doubles up to {@link MAX_BACKOFF_MS}. */
const FIRST_BACKOFF_MS = 5;
const MAX_BACKOFF_MS = 100;
/** Released connection objects kept for reuse. */
const MAX_IDLE_CONNECTIONS = 64;

export class RetryingSqliteDriver implements Driver {
  readonly #db: BetterSqlite3.Database;
  readonly #busyTimeoutMs: number;
  readonly #health: WriteHealth | undefined;
  readonly #statements: StatementCache;
  /** The connection whose transaction is open; others wait for {@link #released}. */
  #owner: Connection | undefined;
  #released: Promise<void> = Promise.resolve();
  #release: () => void = () => undefined;
  /**
   * Released connections, handed out again: Kysely's runtime driver remembers every connection it
   * has seen in a WeakSet and wraps each new one for query logging, which a fresh object per query
   * paid every time (two closures, a WeakSet entry and its garbage).
   */
  readonly #idle: Connection[] = [];

  constructor(options: RetryingSqliteDriverOptions) {
    this.#db = options.database;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.#health = options.health;
    this.#statements = new StatementCache(options.database, options.statementCacheSize);
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    return this.#idle.pop() ?? new Connection(this);
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    const conn = connection as Connection;
    // Checked and taken in one synchronous step: two transactions waiting together must not both start.
    while (this.#owner && this.#owner !== conn) await this.#released;
    this.#owner = conn;
    this.#released = new Promise((resolve) => (this.#release = resolve));
    try {
      await this.run(conn, CompiledQuery.raw('begin immediate'), true);
    } catch (err) {
      this.endTransaction();
      throw err;
    }
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await this.run(connection as Connection, CompiledQuery.raw('commit'), false);
    } finally {
      // A failed commit leaves the transaction open in SQLite; Kysely then calls rollback.
      if (!this.#db.inTransaction) this.endTransaction();
    }
  }

  async rollbackTransaction(): Promise<void> {
    try {
      // SQLite rolls back by itself on some errors; a second rollback would hide the first error.
      if (this.#db.inTransaction) this.#statements.get('rollback').stmt.run();
    } finally {
      this.endTransaction();
    }
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    if (this.#owner === connection) await this.rollbackTransaction();
    // Bounded: a burst of concurrent queries leaves no more than this many kept.
    if (this.#idle.length < MAX_IDLE_CONNECTIONS) this.#idle.push(connection as Connection);
  }

  async destroy(): Promise<void> {
    this.#db.close();
  }

  /**
   * Runs `sql`, a statement that returns rows (a read, or a write with RETURNING), at once, outside
   * any connection (direct-reads.ts): its rows, or undefined when it must wait its turn through
   * Kysely (a transaction is open) or SQLite was busy (retried there).
   */
  readNow(sql: string, parameters: readonly unknown[]): Record<string, unknown>[] | undefined {
    if (this.#owner) return undefined;
    const stmt = this.#statements.get(sql);
    if (!stmt.reader) return undefined;
    try {
      const rows = stmt.all(parameters);
      if (stmt.writes) this.#health?.succeeded();
      return rows;
    } catch (err) {
      if (isBusy(err)) return undefined;
      if (stmt.writes) this.#health?.failed(err);
      throw err;
    }
  }

  /** Runs one statement for `conn`, after any other connection's transaction; retries SQLITE_BUSY outside transactions. */
  async run(conn: Connection, query: CompiledQuery, retryBusy = this.#owner !== conn): Promise<QueryResult<unknown>> {
    const deadline = Date.now() + this.#busyTimeoutMs;
    for (let backoff = FIRST_BACKOFF_MS; ; backoff = Math.min(MAX_BACKOFF_MS, backoff * 2)) {
      while (this.#owner && this.#owner !== conn) await this.#released;
      const stmt = this.#statements.get(query.sql);
      try {
        if (stmt.reader) {
          const rows = stmt.all(query.parameters);
          if (stmt.writes) this.#health?.succeeded();
          return { rows };
        }
        const { changes, lastInsertRowid } = stmt.stmt.run(query.parameters as unknown[]);
        this.#health?.succeeded();
        return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
      } catch (err) {
        const busy = isBusy(err);
        if (!busy || !retryBusy || Date.now() + backoff > deadline) {
          if (stmt.writes) this.#health?.failed(err);
          throw err;
        }
        await sleep(backoff);
      }
    }
  }

  async *stream(conn: Connection, query: CompiledQuery): AsyncIterableIterator<QueryResult<unknown>> {
    if (!SelectQueryNode.is(query.query)) throw new Error('the SQLite driver streams only select queries');
    while (this.#owner && this.#owner !== conn) await this.#released;
    // Its own statement: a kept one would be busy (unusable by others) for as long as the stream is read.
    for (const row of this.#db.prepare(query.sql).iterate(query.parameters as unknown[])) yield { rows: [row] };
  }

  private endTransaction(): void {
    this.#owner = undefined;
    this.#release();
  }
}

/** A handle Kysely holds for one query or one transaction; the driver does the work. */
class Connection implements DatabaseConnection {
  constructor(private readonly driver: RetryingSqliteDriver) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.driver.run(this, query) as Promise<QueryResult<R>>;
  }

  streamQuery<R>(query: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    return this.driver.stream(this, query) as AsyncIterableIterator<QueryResult<R>>;
  }
}

/** SQLITE_BUSY and its extended codes: another connection holds the lock; worth another try. */
function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}
