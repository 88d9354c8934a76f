/** image pending -> submitted: the image is handed to a ComfyUI server (its prompt may be queued there from now on). */
import type { Db } from '../../db/database.js';
import { assignImage, countInFlightOn, lockWorkerSlots } from '../../db/images.js';
import type { ImageRow } from '../../db/types.js';

/** Why {@link submitImage} submitted nothing: every slot of the server is taken (by any replica). */
export const WORKER_FULL = 'worker-full';

/**
 * Assigns a pending image to `worker`, counting the attempt. With `slots`, only while the server has
 * fewer prompts than that from every replica together (checked and taken in one step), else
 * {@link WORKER_FULL}. Undefined when another caller took the image or it is not pending.
 */
export function submitImage(db: Db, taskId: string, index: number, worker: string): Promise<ImageRow | undefined>;
export function submitImage(db: Db, taskId: string, index: number, worker: string, slots: number): Promise<ImageRow | typeof WORKER_FULL | undefined>;
export function submitImage(db: Db, taskId: string, index: number, worker: string, slots?: number): Promise<ImageRow | typeof WORKER_FULL | undefined> {
  return db.transaction().execute(async (trx) => {
    if (slots !== undefined) {
      await lockWorkerSlots(trx, worker);
      if ((await countInFlightOn(trx, worker)) >= slots) return WORKER_FULL;
    }
    return assignImage(trx, taskId, index, worker, new Date().toISOString());
  });
}
