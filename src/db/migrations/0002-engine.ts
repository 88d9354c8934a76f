/**
 * What the task engine adds: parameters and bookkeeping columns on `tasks` (with defaults, so rows
 * of the old service stay valid), one row per image, and the stored uploads.
 */
import type { Kysely } from 'kysely';
import { textType } from './column-types.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations are frozen in time
export async function up(db: Kysely<any>): Promise<void> {
  const text = textType(db);
  const columns: [string, 'integer' | 'bigint' | 'double precision' | typeof text, unknown][] = [
    ['count', 'integer', 1],
    ['size', text, '1024x1024'],
    ['steps', 'integer', 20],
    ['guidance', 'double precision', 2.5],
    ['base_seed', 'bigint', 0],
    ['workflow', text, 'flux-kontext-dev'],
    ['upload_sha256', text, null],
    ['started_at', text, null],
    ['finished_at', text, null],
    ['seq', 'integer', 0],
    ['last_frame', text, null],
    ['idempotency_key', text, null],
    ['params_hash', text, null],
    ['claimed_by', text, null],
    ['lease_expires_at', text, null],
  ];
  for (const [name, type, fallback] of columns) {
    await db.schema
      .alterTable('tasks')
      .addColumn(name, type, (c) => (fallback === null ? c : c.notNull().defaultTo(fallback)))
      .execute();
  }
  await db.schema.createIndex('tasks_queue').on('tasks').columns(['status', 'created_at', 'id']).execute();
  await db.schema.createIndex('tasks_idempotency_key').on('tasks').column('idempotency_key').unique().execute();
  await db.schema.createIndex('tasks_upload').on('tasks').column('upload_sha256').execute();

  await db.schema
    .createTable('uploads')
    .addColumn('sha256', text, (c) => c.primaryKey().notNull())
    .addColumn('file_path', text, (c) => c.notNull())
    .addColumn('bytes', 'integer', (c) => c.notNull())
    .addColumn('content_type', text, (c) => c.notNull())
    .addColumn('width', 'integer', (c) => c.notNull())
    .addColumn('height', 'integer', (c) => c.notNull())
    .addColumn('created_at', text, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('images')
    .addColumn('task_id', text, (c) => c.notNull().references('tasks.id').onDelete('cascade'))
    .addColumn('idx', 'integer', (c) => c.notNull())
    .addColumn('seed', 'bigint', (c) => c.notNull())
    .addColumn('prompt_id', text, (c) => c.notNull().unique())
    .addColumn('worker', text)
    .addColumn('status', text, (c) => c.notNull().defaultTo('pending'))
    .addColumn('file_path', text)
    .addColumn('width', 'integer')
    .addColumn('height', 'integer')
    .addColumn('bytes', 'integer')
    .addColumn('content_type', text)
    .addColumn('error', text)
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('submitted_at', text)
    .addColumn('finished_at', text)
    .addPrimaryKeyConstraint('images_pk', ['task_id', 'idx'])
    .execute();
  await db.schema.createIndex('images_status').on('images').columns(['status', 'worker']).execute();
}
