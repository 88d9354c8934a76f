/**
 * Prepared better-sqlite3 statements kept by SQL text, for the driver.
 *
 * Profiled under the read benchmark, `prepare` was 16% of the service's CPU on
 * `GET /api/task-status/{id}` (SQLite parses and plans the text again on every query), and turning
 * result rows into objects was most of what the queries themselves cost: better-sqlite3 sets each
 * column on a fresh object through the V8 API. Here a statement is prepared once and reused (a
 * bounded LRU), and a reader returns rows as arrays that one generated function per column list
 * turns into objects of one fixed shape: 2-3x faster for a page of tasks, the same rows.
 */
import type BetterSqlite3 from 'better-sqlite3';

/** Turns a row array into the object better-sqlite3 would have made. */
type RowBuilder = (values: unknown[]) => Record<string, unknown>;

/** A prepared statement and, for a reader, how its rows become objects. */
export interface CachedStatement {
  readonly stmt: BetterSqlite3.Statement<unknown[], unknown>;
  readonly reader: boolean;
  /**
   * Its outcome counts for write health: a statement without rows (a write, or BEGIN IMMEDIATE,
   * which waits for the write lock) or a write with RETURNING (a reader too).
   */
  readonly writes: boolean;
  /** Rows as objects, as better-sqlite3's `all` returns them (readers only). */
  all(parameters: readonly unknown[]): Record<string, unknown>[];
}

/** Statements kept by default: the hot queries plus the `in (?, ...)` variants of batched reads. */
export const DEFAULT_STATEMENT_CACHE_SIZE = 256;

/** Data-definition statements: the columns a kept `select *` returns may change after one. */
const SCHEMA_CHANGE = /^\s*(create|alter|drop)\b/i;

export class StatementCache {
  readonly #db: BetterSqlite3.Database;
  readonly #max: number;
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  readonly #entries = new Map<string, CachedStatement>();

  /** @param max statements kept, least recently used dropped first. @default DEFAULT_STATEMENT_CACHE_SIZE */
  constructor(db: BetterSqlite3.Database, max = DEFAULT_STATEMENT_CACHE_SIZE) {
    this.#db = db;
    this.#max = max;
  }

  /** How many statements are kept (for tests). */
  get size(): number {
    return this.#entries.size;
  }

  /** The statement for `sql`, prepared on first use (a syntax error throws and keeps nothing). */
  get(sql: string): CachedStatement {
    const hit = this.#entries.get(sql);
    if (hit) {
      this.#entries.delete(sql);
      this.#entries.set(sql, hit);
      return hit;
    }
    const entry = cachedStatement(this.#db.prepare(sql));
    // A kept statement is not kept across DDL: SQLite re-prepares it, but its row builder would be stale.
    if (SCHEMA_CHANGE.test(sql)) {
      this.#entries.clear();
      return entry;
    }
    this.#entries.set(sql, entry);
    if (this.#entries.size > this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    return entry;
  }
}

function cachedStatement(stmt: BetterSqlite3.Statement<unknown[], unknown>): CachedStatement {
  const writes = !stmt.reader || !stmt.readonly;
  if (!stmt.reader) {
    return { stmt, reader: false, writes, all: () => [] };
  }
  let names = columnNames(stmt);
  let build = rowBuilder(names);
  if (!build) return { stmt, reader: true, writes, all: (parameters) => stmt.all(parameters as unknown[]) as Record<string, unknown>[] };
  const raw = stmt.raw(true);
  return {
    stmt,
    reader: true,
    writes,
    all(parameters) {
      const rows = raw.all(parameters as unknown[]) as unknown[][];
      // Another process changed the schema under us (SQLite re-prepared the statement): read the columns again.
      if (rows.length && rows[0]!.length !== names.length) {
        names = columnNames(stmt);
        build = rowBuilder(names) ?? ((values) => Object.fromEntries(names.map((n, i) => [n, values[i]])));
      }
      const out = new Array<Record<string, unknown>>(rows.length);
      for (let i = 0; i < rows.length; i++) out[i] = build!(rows[i]!);
      return out;
    },
  };
}

function columnNames(stmt: BetterSqlite3.Statement<unknown[], unknown>): string[] {
  return stmt.columns().map((c) => c.name);
}

/**
 * One object literal per column list, so every row has the same hidden class. Duplicate names keep
 * the last value, as better-sqlite3 does. Undefined for `__proto__`, which a literal would not set
 * as a property (the caller keeps better-sqlite3's objects then).
 */
function rowBuilder(names: string[]): RowBuilder | undefined {
  if (names.includes('__proto__')) return undefined;
  const fields = names.map((name, i) => `${JSON.stringify(name)}: v[${i}]`).join(', ');
  // Only column names, quoted by JSON.stringify, become code; values never do.
  return new Function('v', `return { ${fields} };`) as RowBuilder;
}
