/**
 * Opens the SQLite database under DATA_DIR with the settings a long-running service needs, and runs
 * the migrations. Postgres (PostgresDialect) fits behind the same `Kysely<Database>` later.
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, type LogEvent } from 'kysely';
import { migrateToLatest } from './migrate.js';
import { RetryingSqliteDialect } from './sqlite-dialect.js';
import type { Database } from './types.js';
import type { WriteHealth } from './write-health.js';

/** A database handle. */
export type Db = Kysely<Database>;

/** Options of `openDatabase`. */
export interface OpenDatabaseOptions {
  /** The SQLite file; created with its folder when missing. */
  file: string;
  /** Called after every query (counting queries in tests, debug logs). @default undefined */
  onQuery?: (event: LogEvent) => void;
  /** Told of every write's outcome (for /ready and the write probe). @default none */
  health?: WriteHealth;
  /** Longest time a write waits for another process's lock, retried without blocking, in ms. @default 5000 */
  busyTimeoutMs?: number;
}

/** Opens (and migrates) the database; throws a readable error when the folder is not writable. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Db> {
  const folder = dirname(options.file);
  try {
    mkdirSync(folder, { recursive: true });
    accessSync(folder, constants.W_OK);
  } catch (err) {
    throw new Error(`the data folder ${folder} is not writable (${(err as NodeJS.ErrnoException).code ?? String(err)}); set DATA_DIR to a writable folder`);
  }
  const sqlite = new BetterSqlite3(options.file);
  sqlite.pragma('journal_mode = WAL'); // readers never block the writer
  // SQLite's own wait blocks the event loop: keep it tiny; the driver retries a busy write asynchronously.
  sqlite.pragma('busy_timeout = 10');
  sqlite.pragma('synchronous = NORMAL'); // durable with WAL, much faster commits
  sqlite.pragma('foreign_keys = ON');
  const db = new Kysely<Database>({
    dialect: new RetryingSqliteDialect({
      database: sqlite,
      ...(options.health ? { health: options.health } : {}),
      ...(options.busyTimeoutMs !== undefined ? { busyTimeoutMs: options.busyTimeoutMs } : {}),
    }),
    ...(options.onQuery ? { log: options.onQuery } : {}),
  });
  try {
    await migrateToLatest(db as Kysely<unknown>);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return db;
}
