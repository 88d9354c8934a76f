/**
 * Hot reads of a SQLite handle run at once, beside Kysely's executor (and the progress frame's
 * UPDATE ... RETURNING, which returns rows too: the driver counts its outcome for write health).
 *
 * Profiled under the read benchmark, Kysely's way from `executeQuery` to the driver (a connection
 * provided, acquired and released, the log wrapper, the result transform: a dozen promises) was
 * 40% of what `GET /api/task-status/{id}` allocated and more CPU than the two index lookups'
 * JavaScript. A handle opened on SQLite registers its driver here; ReusedQuery asks it first and
 * goes through Kysely when it declines (a transaction is open, SQLite was busy) and on PostgreSQL.
 * Every query run here is still reported to the handle's `onQuery`, in Kysely's event shape: a
 * query event, or an error event when it fails (a declined read is reported by Kysely's path).
 */
import { performance } from 'node:perf_hooks';
import type { CompiledQuery, LogEvent } from 'kysely';

/** Runs a read at once: its rows, or undefined when the caller must go through Kysely. */
export type ReadNow = (sql: string, parameters: readonly unknown[]) => Record<string, unknown>[] | undefined;

/** What a handle registers. */
interface DirectReader {
  readNow: ReadNow;
  onQuery: ((event: LogEvent) => void) | undefined;
}

const readers = new WeakMap<object, DirectReader>();

/** Registers the direct reads of the handle `db` (a Kysely instance on SQLite); `onQuery` as the handle's. */
export function registerDirectReads(db: object, readNow: ReadNow, onQuery: ((event: LogEvent) => void) | undefined): void {
  readers.set(db, { readNow, onQuery });
}

/**
 * The rows of `query` (its SQL with `parameters`) read at once when `db` has direct reads and they
 * can run now; undefined otherwise (a transaction handle is never registered, so it always is).
 */
export function readDirectly<R>(db: object, query: CompiledQuery<R>, parameters: readonly unknown[]): R[] | undefined {
  const reader = readers.get(db);
  if (!reader) return undefined;
  if (!reader.onQuery) return reader.readNow(query.sql, parameters) as R[] | undefined;
  const start = performance.now();
  let rows: Record<string, unknown>[] | undefined;
  try {
    rows = reader.readNow(query.sql, parameters);
  } catch (error) {
    // Kysely reports a failed query as an error event (no query event): so does this path.
    reader.onQuery({ level: 'error', error, query: { ...query, parameters }, queryDurationMillis: performance.now() - start });
    throw error;
  }
  if (rows) reader.onQuery({ level: 'query', isStream: false, query: { ...query, parameters }, queryDurationMillis: performance.now() - start });
  return rows as R[] | undefined;
}
