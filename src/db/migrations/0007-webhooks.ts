/**
 * Webhooks: each task's own target and event filter (`tasks.webhook_url`, `tasks.webhook_events`),
 * and the outbox (`webhook_outbox`), one row per event and target, written in the transaction of
 * the state change that causes it and delivered from there at least once.
 */
import type { Kysely } from 'kysely';
import { textType } from './column-types.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations are frozen in time
export async function up(db: Kysely<any>): Promise<void> {
  const text = textType(db);
  await db.schema.alterTable('tasks').addColumn('webhook_url', text).execute();
  await db.schema.alterTable('tasks').addColumn('webhook_events', text).execute();
  await db.schema
    .createTable('webhook_outbox')
    .addColumn('id', text, (c) => c.primaryKey().notNull())
    .addColumn('task_id', text, (c) => c.notNull())
    .addColumn('ordinal', 'integer', (c) => c.notNull())
    .addColumn('url', text, (c) => c.notNull())
    .addColumn('source', text, (c) => c.notNull())
    .addColumn('type', text, (c) => c.notNull())
    .addColumn('payload', text, (c) => c.notNull())
    .addColumn('status', text, (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', text, (c) => c.notNull())
    .addColumn('retry_since', text, (c) => c.notNull())
    .addColumn('leased_by', text)
    .addColumn('lease_expires_at', text)
    .addColumn('last_status', 'integer')
    .addColumn('last_error', text)
    .addColumn('created_at', text, (c) => c.notNull())
    .addColumn('finished_at', text)
    .execute();
  // The deliverer's scan: pending rows by when they are due.
  await db.schema.createIndex('webhook_outbox_due').on('webhook_outbox').columns(['status', 'next_attempt_at']).execute();
  // The order of one task's events to one target, and `webhooks list --task`.
  await db.schema.createIndex('webhook_outbox_task').on('webhook_outbox').columns(['task_id', 'url', 'ordinal']).execute();
  await db.schema.createIndex('webhook_outbox_created').on('webhook_outbox').columns(['created_at']).execute();
}
