/**
 * The old FastAPI service's `tasks` table. `if not exists`: a database file left by that service is
 * adopted as it is, and the next migration adds what the engine needs. On PostgreSQL it is simply created.
 */
import type { Kysely } from 'kysely';
import { nowAsText, textType } from './column-types.js';

// Migrations take Kysely<any>: they are frozen in time and must not follow today's table types.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  const text = textType(db);
  await db.schema
    .createTable('tasks')
    .ifNotExists()
    .addColumn('id', text, (c) => c.primaryKey().notNull())
    .addColumn('description', text, (c) => c.notNull())
    .addColumn('status', text, (c) => c.notNull().defaultTo('pending'))
    .addColumn('progress', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('result_path', text)
    .addColumn('error_message', text)
    .addColumn('created_at', text, (c) => c.notNull().defaultTo(nowAsText(db)))
    .addColumn('updated_at', text, (c) => c.notNull().defaultTo(nowAsText(db)))
    .execute();
}
