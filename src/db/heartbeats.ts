/** Queries on `heartbeats` (only this module writes SQL for it). */
import type { Db } from './database.js';

/** Records that `instance` could write at `at` (the write probe). */
export async function beat(db: Db, instance: string, at: string): Promise<void> {
  await db
    .insertInto('heartbeats')
    .values({ instance, at })
    .onConflict((oc) => oc.column('instance').doUpdateSet({ at }))
    .execute();
}
