/**
 * Opens the database and runs the migrations: SQLite under DATA_DIR by default, or PostgreSQL
 * (Kysely's PostgresDialect over a `pg` pool) for DATABASE_URL. Both sit behind one `Kysely<Database>`.
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, type LogEvent } from 'kysely';
import { registerDirectReads } from './direct-reads.js';
import { migrateToLatest } from './migrate.js';
import { createPostgresPool, firstError } from './postgres-pool.js';
import { RetryingSqliteDialect } from './sqlite-dialect.js';
import type { Database } from './types.js';
import type { WriteHealth } from './write-health.js';

/** A database handle. */
export type Db = Kysely<Database>;

/** What both dialects take. */
interface CommonOptions {
  /** Called after every query (counting queries in tests, debug logs). @default undefined */
  onQuery?: (event: LogEvent) => void;
  /** Told of every write's outcome (for /ready and the write probe). @default none */
  health?: WriteHealth;
}

/** SQLite in one file (the default: `DATA_DIR/kontext.db`). */
export interface SqliteDatabaseOptions extends CommonOptions {
  /** The SQLite file; created with its folder when missing. */
  file: string;
  /** Longest time a write waits for another process's lock, retried without blocking, in ms. @default 5000 */
  busyTimeoutMs?: number;
}

/** PostgreSQL (DATABASE_URL). */
export interface PostgresDatabaseOptions extends CommonOptions {
  /** `postgres://user[:password]@host[:port]/database` (or `postgresql://`). */
  url: string;
  /** Longest wait for a connection, at start and later, in ms. @default 5000 */
  connectTimeoutMs?: number;
  /** Most connections this process holds. @default 10 */
  maxConnections?: number;
}

/** Options of `openDatabase`: `{ file }` for SQLite, `{ url }` for PostgreSQL. */
export type OpenDatabaseOptions = SqliteDatabaseOptions | PostgresDatabaseOptions;

/** SQLite's page cache per connection, in KiB. @default 65536 (64 MiB; better-sqlite3 builds SQLite with 16 000 KiB) */
export const PAGE_CACHE_KIB = 64 * 1024;

/**
 * Opens (and migrates) the database. Throws one readable line when it cannot: a data folder that
 * is not writable, or (PostgreSQL) a bad DATABASE_URL or a server that does not answer.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Db> {
  const db = 'url' in options ? await openPostgres(options) : openSqlite(options);
  try {
    await migrateToLatest(db as Kysely<unknown>);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  if (options.health) healthOf.set(db, options.health);
  return db;
}

/** Each handle's WriteHealth, for writes made on connections of its own (side-writer.ts). */
const healthOf = new WeakMap<Db, WriteHealth>();

/** The WriteHealth `db` was opened with; undefined when none. */
export function writeHealthOf(db: Db): WriteHealth | undefined {
  return healthOf.get(db);
}

function openSqlite(options: SqliteDatabaseOptions): Db {
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
  // better-sqlite3's default page cache is ~16 MB: with 100 000 stored tasks, status reads spread
  // over the table (~20 MB of pages for 1000 of them) kept missing it and read pages through system
  // calls (0.86-0.90 of the rate at 1000 tasks; 0.94-0.97 with 64 MiB). Pages are cached as they are
  // read, so a small database never takes more than its size.
  sqlite.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
  const dialect = new RetryingSqliteDialect({
    database: sqlite,
    ...(options.health ? { health: options.health } : {}),
    ...(options.busyTimeoutMs !== undefined ? { busyTimeoutMs: options.busyTimeoutMs } : {}),
  });
  const db = new Kysely<Database>({ dialect, ...(options.onQuery ? { log: options.onQuery } : {}) });
  const driver = dialect.driver!;
  registerDirectReads(db, (sql, parameters) => driver.readNow(sql, parameters), options.onQuery);
  return db;
}

async function openPostgres(options: PostgresDatabaseOptions): Promise<Db> {
  const where = describeUrl(options.url);
  const pool = createPostgresPool({
    url: options.url,
    ...(options.health ? { health: options.health } : {}),
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
  });
  // Connect once now: a wrong host, database or user must stop the start, not the first request.
  try {
    (await pool.pool.connect()).release();
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new Error(`DATABASE_URL: cannot connect to ${where}: ${connectFailure(err)}`);
  }
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    ...(options.onQuery ? { log: options.onQuery } : {}),
  });
}

/** The URL as it may be printed: without its password; throws the readable line for a URL that is not one. */
function describeUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Not echoed: a mistyped URL may still hold a password.
    throw new Error('DATABASE_URL: not a URL; expected postgres://user@host:port/database');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error(`DATABASE_URL: unsupported scheme "${url.protocol.slice(0, -1)}"; expected postgres://user@host:port/database`);
  }
  if (url.password) url.password = '***';
  return url.toString();
}

/** Why a connection failed, on one line: pg's or Node's message, with its code. */
function connectFailure(err: unknown): string {
  const e = firstError(err);
  const message = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
  const code = (e as { code?: unknown }).code;
  if (/timeout exceeded when trying to connect/i.test(message)) return 'no answer within the connect timeout';
  return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
}
