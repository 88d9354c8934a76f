/**
 * pending -> processing: this instance takes the task at the head of the queue (fair order, or the
 * oldest). Records the `start` webhook event.
 */
import type { Db } from '../../db/database.js';
import { claimNextPending, findTask } from '../../db/tasks.js';
import type { TaskRow } from '../../db/types.js';
import type { QueuePolicy } from '../fair-order.js';
import { emptyFrame, type ProgressFrame } from '../progress-frame.js';
import { TASK_WEBHOOKS_ONLY, type WebhookRecorder } from '../../webhooks/recorder.js';
import { writeFrame } from './write-frame.js';

/** Options of {@link claimTask}. */
export interface ClaimOptions {
  instance: string;
  /** Claims expire at this ISO time unless renewed. */
  leaseUntil: string;
  /** No claim while this many tasks are processing (MAX_CONCURRENT_TASKS). */
  maxProcessing: number;
  /** Which task is the head: `fair` order across keys, or `fifo` (the oldest). @default 'fair' */
  policy?: QueuePolicy;
  /** Writes the webhook events (WEBHOOK_URL, signed image URLs). @default the task's own webhook only */
  webhooks?: WebhookRecorder;
}

/** Claims the head of the queue if fewer than `maxProcessing` are processing; undefined when none may start. */
export async function claimTask(db: Db, options: ClaimOptions): Promise<{ row: TaskRow; frame: ProgressFrame } | undefined> {
  const { webhooks = TASK_WEBHOOKS_ONLY, ...claim } = options;
  let recorded = 0;
  const claimed = await db.transaction().execute(async (trx) => {
    const row = await claimNextPending(trx, { ...claim, now: new Date().toISOString() });
    if (!row) return undefined;
    const frame = await writeFrame(trx, row.id, {}, { ...emptyFrame(row.id, 'processing', row.progress), etaSeconds: null });
    recorded = await webhooks.record(trx, row.id, ['start']);
    // The row as it is now, with the frame just written (seq, last_frame).
    return { row: (await findTask(trx, row.id))!, frame: frame! };
  });
  if (recorded > 0) webhooks.committed();
  return claimed;
}
