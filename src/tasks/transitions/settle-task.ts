/**
 * processing -> completed | failed, after a crash between an image's last write and the task's: a
 * task whose images have all ended is finished from them. Records the `completed` webhook event.
 */
import { join } from 'node:path';
import type { Db } from '../../db/database.js';
import { imagesOfTask } from '../../db/images.js';
import { lockTask } from '../../db/tasks.js';
import { emptyFrame, type ProgressFrame } from '../progress-frame.js';
import { TASK_WEBHOOKS_ONLY, type WebhookRecorder } from '../../webhooks/recorder.js';
import { writeFrame } from './write-frame.js';

/**
 * Finishes the task when none of its images is open; undefined when some still are (or it is not
 * processing). `webhooks` writes the webhook events (@default the task's own webhook only).
 */
export async function settleTask(db: Db, taskId: string, dataDir: string, webhooks: WebhookRecorder = TASK_WEBHOOKS_ONLY): Promise<ProgressFrame | undefined> {
  let recorded = 0;
  const settled = await db.transaction().execute(async (trx) => {
    // Locked first, as every transition that reads a task's images to decide its status.
    const task = await lockTask(trx, taskId);
    if (task?.status !== 'processing') return undefined;
    const images = await imagesOfTask(trx, taskId);
    if (images.some((i) => i.status === 'pending' || i.status === 'submitted' || i.status === 'running')) return undefined;
    const at = new Date().toISOString();
    const done = images.filter((i) => i.status === 'completed');
    const ended = { finished_at: at, claimed_by: null, lease_expires_at: null };
    let frame: ProgressFrame | undefined;
    if (done.length === images.length) {
      const resultPath = JSON.stringify(done.map((i) => join(dataDir, i.file_path!)));
      frame = await writeFrame(trx, taskId, { ...ended, status: 'completed', progress: 100, result_path: resultPath }, emptyFrame(taskId, 'completed', 100), ['processing']);
    } else {
      const error = task.error_message ?? images.find((i) => i.error)?.error ?? 'interrupted by a restart';
      frame = await writeFrame(trx, taskId, { ...ended, status: 'failed', error_message: error }, { ...emptyFrame(taskId, 'failed', task.progress), error }, ['processing']);
    }
    if (frame) recorded = await webhooks.record(trx, taskId, ['completed']);
    return frame;
  });
  if (recorded > 0) webhooks.committed();
  return settled;
}
