/**
 * processing -> processing (cancel requested): a replica asked to cancel a task that another replica
 * runs records the request; the replica running it ends the task at its next scheduling pass (sooner
 * when a cancel signal reaches it).
 */
import type { Db } from '../../db/database.js';
import { markCancelRequested } from '../../db/tasks.js';

/** Records the request while the task is processing; false when it is not (it ended meanwhile). */
export function requestCancel(db: Db, taskId: string): Promise<boolean> {
  return markCancelRequested(db, taskId, new Date().toISOString());
}
