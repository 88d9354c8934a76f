/** pending -> cancelled: a task cancelled before it started; nothing of it reached ComfyUI. */
import type { Db } from '../../db/database.js';
import { finishOpenImages } from '../../db/images.js';
import { emptyFrame, type ProgressFrame } from '../progress-frame.js';
import { writeFrame } from './write-frame.js';

/** Cancels the task if it is still pending, with its images; undefined (nothing written) otherwise. */
export async function cancelPendingTask(db: Db, taskId: string): Promise<ProgressFrame | undefined> {
  return db.transaction().execute(async (trx) => {
    const at = new Date().toISOString();
    const frame = await writeFrame(trx, taskId, { status: 'cancelled', finished_at: at }, emptyFrame(taskId, 'cancelled', 0), ['pending']);
    if (frame) await finishOpenImages(trx, taskId, 'cancelled', at);
    return frame;
  });
}
