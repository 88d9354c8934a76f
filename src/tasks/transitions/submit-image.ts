/** image pending -> submitted: the image is handed to a ComfyUI server (its prompt may be queued there from now on). */
import type { Db } from '../../db/database.js';
import { assignImage } from '../../db/images.js';
import type { ImageRow } from '../../db/types.js';

/** Assigns a pending image to `worker`, counting the attempt; undefined when another caller took it or it is not pending. */
export function submitImage(db: Db, taskId: string, index: number, worker: string): Promise<ImageRow | undefined> {
  return assignImage(db, taskId, index, worker, new Date().toISOString());
}
