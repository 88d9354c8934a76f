/**
 * The task list (newest first, no status filter) walks this index instead of scanning and sorting
 * every task on each request.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations are frozen in time
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('tasks_newest').on('tasks').columns(['created_at', 'id']).execute();
}
