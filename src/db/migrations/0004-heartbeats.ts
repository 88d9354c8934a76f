/**
 * `heartbeats`: one row per service instance, written to check that the database takes writes
 * again after a failure. The index on images(prompt_id) finds which image a prompt in a ComfyUI
 * queue belongs to, when a server that was down answers again.
 */
import type { Kysely } from 'kysely';
import { textType } from './column-types.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations are frozen in time
export async function up(db: Kysely<any>): Promise<void> {
  const text = textType(db);
  await db.schema
    .createTable('heartbeats')
    .addColumn('instance', text, (c) => c.primaryKey())
    .addColumn('at', text, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('images_prompt_id').on('images').column('prompt_id').execute();
}
