/**
 * Database tests over every dialect the service runs on: `forEachDialect` repeats a block of tests
 * on SQLite and on PostgreSQL, each test with a fresh, migrated database of its own (SQLite in a
 * temp folder; on PostgreSQL `CREATE DATABASE kontext_test_<random>`, dropped after the test).
 *
 * PostgreSQL comes from TEST_DATABASE_URL, by default `postgres://127.0.0.1:5432/test` (the CI
 * machines' server, trust authentication); it only serves to create and drop the test databases.
 * When it does not answer, the PostgreSQL variants fail in CI (`CI` set) and are skipped elsewhere,
 * with one line saying why.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, it } from 'vitest';
import { openDatabase, type Db, type OpenDatabaseOptions } from '../../src/db/database.js';
import type { DialectName } from '../../src/db/dialect.js';

export type { DialectName };

/** Every dialect, in the order the blocks run. */
export const DIALECTS: readonly DialectName[] = ['sqlite', 'postgres'];

/** The server that hosts the test databases, with a user filled in (pg would take $USER, unset on some machines). */
export const ADMIN_URL = withUser(process.env.TEST_DATABASE_URL || 'postgres://127.0.0.1:5432/test');

function withUser(raw: string): string {
  const url = new URL(raw);
  if (!url.username) url.username = process.env.PGUSER ?? process.env.USER ?? 'postgres';
  return url.toString();
}

/** Why PostgreSQL cannot be used here, or undefined when it answers. Checked once per test file. */
export const postgresProblem: string | undefined = await probePostgres();

async function probePostgres(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    return undefined;
  } catch (err) {
    const e = err instanceof AggregateError && err.errors.length ? (err.errors[0] as Error) : (err as Error);
    return `PostgreSQL at ${new URL(ADMIN_URL).host} does not answer (${e.message || String((e as { code?: unknown }).code)})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

let admin: pg.Pool | undefined;
/** One small pool per test file for CREATE/DROP DATABASE; it lets the process exit when idle. */
function adminPool(): pg.Pool {
  if (!admin) {
    admin = new pg.Pool({ connectionString: ADMIN_URL, max: 2, allowExitOnIdle: true, idleTimeoutMillis: 1000 });
    admin.on('error', () => undefined); // an idle admin connection dropped: the next query opens another
  }
  return admin;
}

/** Opens another handle on a test database; extra options as openDatabase takes them. */
export type OpenExtra = Partial<Pick<OpenDatabaseOptions, 'health' | 'onQuery'>>;

/** One test's database. */
export interface TestDatabase {
  dialect: DialectName;
  /** What openDatabase needs to reach it: `{ file }` or `{ url }`. */
  target: { file: string } | { url: string };
  /** Opens (and migrates) another handle, as another replica would; closed after the test. */
  open(extra?: OpenExtra): Promise<Db>;
  /** Closes the handles and removes the database. */
  drop(): Promise<void>;
}

/** A test database's handles and clean-up, whatever its dialect. */
function handle(dialect: DialectName, target: TestDatabase['target'], handles: Db[], remove: () => Promise<void>): TestDatabase {
  return {
    dialect,
    target,
    open: async (extra = {}) => {
      const db = await openDatabase({ ...target, ...extra });
      handles.push(db);
      return db;
    },
    drop: async () => {
      await Promise.all(handles.splice(0).map((h) => h.destroy().catch(() => undefined)));
      await remove();
    },
  };
}

/** The service's settings for a test database: DATABASE_URL for PostgreSQL, DATA_DIR for SQLite. */
export function serviceDatabase(target: TestDatabase['target']): { databaseUrl: string } | { dataDir: string } {
  return 'url' in target ? { databaseUrl: target.url } : { dataDir: dirname(target.file) };
}

/** Creates an empty database on `dialect` (nothing opened yet). */
export async function createTestDatabase(dialect: DialectName): Promise<TestDatabase> {
  const handles: Db[] = [];
  if (dialect === 'sqlite') {
    const dir = await mkdtemp(join(tmpdir(), 'kontext-db-'));
    const target = { file: join(dir, 'kontext.db') };
    return handle(dialect, target, handles, () => rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }));
  }
  const name = `kontext_test_${randomBytes(6).toString('hex')}`;
  // A linguistic collation (ICU en-US), as many servers have, not the bytewise one of the CI database:
  // text must still sort as on SQLite (the migrations ask for `collate "C"`).
  await adminPool().query(`create database ${name} template template0 locale_provider icu icu_locale 'en-US' locale 'C.UTF-8'`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const target = { url: url.toString() };
  return handle(dialect, target, handles, async () => {
    await adminPool().query(`drop database if exists ${name} with (force)`);
  });
}

/** What a block of tests gets: the dialect, and per test a fresh database with one open handle. */
export interface DialectContext {
  readonly dialect: DialectName;
  /** The current test's database, opened and migrated. */
  readonly db: Db;
  /** The current test's database, to open more handles on it. */
  readonly database: TestDatabase;
}

let warned = false;

/**
 * Declares `describe(\`${title} (${dialect})\`)` once per dialect in `only` (all by default); `fn`
 * declares the tests and reads `ctx.db` inside them.
 */
export function forEachDialect(title: string, fn: (ctx: DialectContext) => void, only: readonly DialectName[] = DIALECTS): void {
  for (const dialect of only) {
    const problem = dialect === 'postgres' ? postgresProblem : undefined;
    if (problem && process.env.CI) {
      // CI has PostgreSQL: its absence is a broken machine, never a pass.
      describe(`${title} (${dialect})`, () => {
        it('needs PostgreSQL', () => {
          throw new Error(`${problem}; CI must run the PostgreSQL tests (set TEST_DATABASE_URL)`);
        });
      });
      continue;
    }
    if (problem && !warned) {
      warned = true;
      console.warn(`skipping the PostgreSQL variants of the database tests: ${problem} (set TEST_DATABASE_URL to run them)`);
    }
    let current: TestDatabase | undefined;
    let db: Db | undefined;
    const ctx: DialectContext = {
      dialect,
      get db() {
        if (!db) throw new Error('ctx.db is only there inside a test');
        return db;
      },
      get database() {
        if (!current) throw new Error('ctx.database is only there inside a test');
        return current;
      },
    };
    (problem ? describe.skip : describe)(`${title} (${dialect})`, () => {
      beforeEach(async () => {
        current = await createTestDatabase(dialect);
        db = await current.open();
      });
      afterEach(async () => {
        await current?.drop();
        current = undefined;
        db = undefined;
      });
      fn(ctx);
    });
  }
}
