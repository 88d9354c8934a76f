/**
 * processing (a previous run's, or a lapsed claim) -> processing (ours): the tasks this instance must
 * reconcile with ComfyUI at start.
 */
import type { Db } from '../../db/database.js';
import { findRecoverable, reclaim } from '../../db/tasks.js';
import type { TaskRow } from '../../db/types.js';

/** Options of {@link recoverTasks}. */
export interface RecoverOptions {
  instance: string;
  leaseUntil: string;
  /**
   * Also this instance's own claims (at start: a previous run of the same INSTANCE_ID left them).
   * While running, only unclaimed tasks and other replicas' lapsed claims are taken. @default true
   */
  includeOwn?: boolean;
}

/**
 * Claims every processing task that is this instance's or whose claim lapsed; returns them, oldest
 * first, as read under the claim: their stored frame is the last one a previous holder can write.
 */
export function recoverTasks(db: Db, options: RecoverOptions): Promise<TaskRow[]> {
  return db.transaction().execute(async (trx) => {
    const found = await findRecoverable(trx, { instance: options.instance, now: new Date().toISOString() });
    const tasks = options.includeOwn === false ? found.filter((t) => t.claimed_by !== options.instance) : found;
    await reclaim(trx, tasks.map((t) => t.id), options);
    return tasks;
  });
}
