/** image submitted/running -> pending: its server went away or lost the prompt; it runs again (same prompt id). */
import type { Db } from '../../db/database.js';
import { updateImage } from '../../db/images.js';

/** Puts the image back in the queue with the reason noted; false when it was no longer in flight. */
export function requeueImage(db: Db, taskId: string, index: number, reason: string): Promise<boolean> {
  return updateImage(db, taskId, index, { status: 'pending', worker: null, error: reason }, ['submitted', 'running']);
}
