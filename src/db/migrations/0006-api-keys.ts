/**
 * API keys and ownership: `api_keys` (only a hash of each key is stored), `settings` (values every
 * replica shares, such as the image-URL signing secret), `tasks.owner_key_id` (null for tasks made
 * while the service was open), idempotency keys unique per owner instead of globally, and the
 * indexes the fair queue reads (an owner's pending tasks, and when an owner last got a task started).
 */
import { sql, type Kysely } from 'kysely';
import { textType } from './column-types.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations are frozen in time
export async function up(db: Kysely<any>): Promise<void> {
  const text = textType(db);
  await db.schema
    .createTable('api_keys')
    .addColumn('id', text, (c) => c.primaryKey().notNull())
    .addColumn('name', text, (c) => c.notNull())
    .addColumn('prefix', text, (c) => c.notNull())
    .addColumn('hash', text, (c) => c.notNull().unique())
    .addColumn('scopes', text, (c) => c.notNull())
    .addColumn('max_concurrent', 'integer')
    .addColumn('images_per_day', 'integer')
    .addColumn('rate_per_minute', 'integer')
    .addColumn('priority', text, (c) => c.notNull().defaultTo('normal'))
    .addColumn('created_at', text, (c) => c.notNull())
    .addColumn('last_used_at', text)
    .addColumn('revoked_at', text)
    .execute();
  await db.schema
    .createTable('settings')
    .addColumn('name', text, (c) => c.primaryKey().notNull())
    .addColumn('value', text, (c) => c.notNull())
    .execute();
  await db.schema.alterTable('tasks').addColumn('owner_key_id', text).execute();
  await db.schema.dropIndex('tasks_idempotency_key').execute();
  // One key's idempotency keys never collide with another's; '' stands for the open service's tasks.
  await db.schema
    .createIndex('tasks_owner_idempotency_key')
    .on('tasks')
    .expression(sql`coalesce(owner_key_id, ''), idempotency_key`)
    .unique()
    .execute();
  await db.schema.createIndex('tasks_owner_status').on('tasks').columns(['owner_key_id', 'status', 'created_at']).execute();
  await db.schema.createIndex('tasks_owner_started').on('tasks').columns(['owner_key_id', 'started_at']).execute();
}
