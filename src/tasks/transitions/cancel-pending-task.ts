/**
 * pending -> cancelled: a task cancelled before it started; nothing of it reached ComfyUI. Records
 * the `completed` webhook event.
 */
import type { Db } from '../../db/database.js';
import { finishOpenImages } from '../../db/images.js';
import { emptyFrame, type ProgressFrame } from '../progress-frame.js';
import { TASK_WEBHOOKS_ONLY, type WebhookRecorder } from '../../webhooks/recorder.js';
import { writeFrame } from './write-frame.js';

/**
 * Cancels the task if it is still pending, with its images; undefined (nothing written) otherwise.
 * `webhooks` writes the webhook events (@default the task's own webhook only).
 */
export async function cancelPendingTask(db: Db, taskId: string, webhooks: WebhookRecorder = TASK_WEBHOOKS_ONLY): Promise<ProgressFrame | undefined> {
  let recorded = 0;
  const cancelled = await db.transaction().execute(async (trx) => {
    const at = new Date().toISOString();
    const frame = await writeFrame(trx, taskId, { status: 'cancelled', finished_at: at }, emptyFrame(taskId, 'cancelled', 0), ['pending']);
    if (frame) {
      await finishOpenImages(trx, taskId, 'cancelled', at);
      recorded = await webhooks.record(trx, taskId, ['completed']);
    }
    return frame;
  });
  if (recorded > 0) webhooks.committed();
  return cancelled;
}
