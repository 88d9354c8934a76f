/**
 * processing -> failed | cancelled: a task ended early. Its unfinished images end with it (the one
 * that caused a failure records why); finished images are kept. Records the `completed` webhook event.
 */
import type { Db } from '../../db/database.js';
import { finishOpenImages, updateImage } from '../../db/images.js';
import type { ImageRow } from '../../db/types.js';
import { emptyFrame, type ProgressFrame } from '../progress-frame.js';
import { TASK_WEBHOOKS_ONLY, type WebhookRecorder } from '../../webhooks/recorder.js';
import { writeFrame } from './write-frame.js';

/** What {@link endTask} needs besides the database. */
export interface EndTaskInput {
  taskId: string;
  status: 'failed' | 'cancelled';
  /** Why it failed (the task's error_message); null for a cancel. */
  error: string | null;
  /** The image whose failure ended the task, to record the reason on it. */
  failedImage?: number;
  /** The task's progress so far (kept: it never goes back). */
  progress: number;
  /** Only while this instance holds the task's claim. @default any holder */
  holder?: string;
  /** Writes the webhook events (WEBHOOK_URL, signed image URLs). @default the task's own webhook only */
  webhooks?: WebhookRecorder;
}

/** The frame to publish and the images that were submitted or running (their prompts must leave ComfyUI). */
export interface EndedTask {
  frame: ProgressFrame;
  inFlight: ImageRow[];
}

/** Ends the task if it is processing; undefined (nothing written) when it had already ended. */
export async function endTask(db: Db, input: EndTaskInput): Promise<EndedTask | undefined> {
  const { taskId, status, error } = input;
  const webhooks = input.webhooks ?? TASK_WEBHOOKS_ONLY;
  let recorded = 0;
  const ended = await db.transaction().execute(async (trx): Promise<EndedTask | undefined> => {
    const at = new Date().toISOString();
    const frame = await writeFrame(
      trx,
      taskId,
      { status, error_message: error, progress: input.progress, finished_at: at, claimed_by: null, lease_expires_at: null },
      { ...emptyFrame(taskId, status, input.progress), error },
      ['processing'],
      input.holder,
    );
    if (!frame) return undefined;
    if (input.failedImage !== undefined && error) await updateImage(trx, taskId, input.failedImage, { error });
    const open = await finishOpenImages(trx, taskId, status, at);
    recorded = await webhooks.record(trx, taskId, ['completed']);
    return { frame, inFlight: open.filter((i) => i.status === 'submitted' || i.status === 'running') };
  });
  if (recorded > 0) webhooks.committed();
  return ended;
}
