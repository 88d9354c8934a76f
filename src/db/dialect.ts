/**
 * Which SQL dialect a database handle speaks, for the few queries that must differ (row locks on
 * Postgres, pragmas on SQLite). Read from the handle itself, so it works on transactions too.
 */
import { PostgresAdapter, type Kysely } from 'kysely';

/** The dialects `openDatabase` opens. */
export type DialectName = 'sqlite' | 'postgres';

/** The dialect of `db` (a database or a transaction). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any table types: only the adapter is read
export function dialectOf(db: Kysely<any>): DialectName {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}
