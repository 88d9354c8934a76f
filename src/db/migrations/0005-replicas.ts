/**
 * For several replicas: `tasks.cancel_requested_at` carries a cancel to the replica running the task
 * (it checks its tasks at every scheduling pass), and images(worker, status) counts the prompts every
 * replica has on one ComfyUI server, so its slots are shared.
 */
import type { Kysely } from 'kysely';
import { textType } from './column-types.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations are frozen in time
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('tasks').addColumn('cancel_requested_at', textType(db)).execute();
  await db.schema.createIndex('images_worker_status').on('images').columns(['worker', 'status']).execute();
}
