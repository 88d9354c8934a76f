/**
 * processing (a previous run's, or a lapsed claim) -> processing (ours): the tasks this instance must
 * reconcile with ComfyUI at start.
 */
import type { Db } from '../../db/database.js';
import { findRecoverable, reclaim } from '../../db/tasks.js';
import type { TaskRow } from '../../db/types.js';

/** Claims every processing task that is this instance's or whose claim lapsed; returns them, oldest first. */
export function recoverTasks(db: Db, options: { instance: string; leaseUntil: string }): Promise<TaskRow[]> {
  return db.transaction().execute(async (trx) => {
    const tasks = await findRecoverable(trx, { instance: options.instance, now: new Date().toISOString() });
    await reclaim(trx, tasks.map((t) => t.id), options);
    return tasks;
  });
}
