/**
 * Column types the migrations share where the dialects differ. Text on PostgreSQL compares bytewise
 * (`collate "C"`), as SQLite's does: ids and ISO timestamps then sort the same on both, whatever
 * locale the server's database was created with, and their indexes serve `<` and `order by`.
 * Frozen with the migrations that use it: change it only by adding a migration.
 */
import { sql, type Expression, type Kysely } from 'kysely';
import { dialectOf } from '../dialect.js';

/** `text` on SQLite, `text collate "C"` on PostgreSQL. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations take Kysely<any>
export function textType(db: Kysely<any>): 'text' | Expression<unknown> {
  return dialectOf(db) === 'postgres' ? sql`text collate "C"` : 'text';
}

/**
 * The current time as the default of a text timestamp column: SQLite's CURRENT_TIMESTAMP text as
 * the old service wrote it, and the same UTC `YYYY-MM-DD HH:MM:SS` on PostgreSQL (whose
 * CURRENT_TIMESTAMP cast to text would add fractions and a zone).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations take Kysely<any>
export function nowAsText(db: Kysely<any>): Expression<unknown> {
  return dialectOf(db) === 'postgres' ? sql`to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS')` : sql`CURRENT_TIMESTAMP`;
}
