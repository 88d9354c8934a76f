/**
 * image -> completed: its file is stored. When it was the task's last image, the task is completed
 * in the same transaction (processing -> completed). Records the `output` webhook event, and
 * `completed` after it when the task completed.
 */
import { join } from 'node:path';
import type { Db } from '../../db/database.js';
import { imagesOfTask, updateImage } from '../../db/images.js';
import { lockTask } from '../../db/tasks.js';
import type { ImageRow } from '../../db/types.js';
import { emptyFrame, type FrameImage, type ProgressFrame } from '../progress-frame.js';
import { TASK_WEBHOOKS_ONLY, type WebhookRecorder } from '../../webhooks/recorder.js';
import { writeFrame } from './write-frame.js';

/** The stored file of an image, as recorded. */
export interface StoredImage {
  /** Relative to DATA_DIR. */
  file_path: string;
  width: number;
  height: number;
  bytes: number;
  content_type: string;
}

/** What {@link completeImage} needs besides the database. */
export interface CompleteImageInput {
  taskId: string;
  image: Pick<ImageRow, 'idx' | 'seed'>;
  stored: StoredImage;
  /** DATA_DIR, absolute: the legacy `result_path` column lists absolute paths. */
  dataDir: string;
  /** Only while this instance holds the task's claim (another replica may have taken it over). @default any holder */
  holder?: string;
  /** The task's progress and ETA once `done` images are finished (called only while some are not). */
  progressWith: (done: number) => { progress: number; etaSeconds: number | null };
  /** Writes the webhook events (WEBHOOK_URL, signed image URLs). @default the task's own webhook only */
  webhooks?: WebhookRecorder;
}

/** What changed: the frame to publish, the finished images, and whether the task is now completed. */
export interface CompletedImage {
  frame: ProgressFrame;
  done: ImageRow[];
  taskCompleted: boolean;
}

/** Records the image (only while submitted or running); undefined when the task was cancelled or failed meanwhile. */
export async function completeImage(db: Db, input: CompleteImageInput): Promise<CompletedImage | undefined> {
  const { taskId, image, stored } = input;
  const webhooks = input.webhooks ?? TASK_WEBHOOKS_ONLY;
  let written = 0;
  const completed = await db.transaction().execute(async (trx): Promise<CompletedImage | undefined> => {
    // Only for a processing task (a refusal further down must not leave the image recorded). Locked:
    // on PostgreSQL, two images finishing at once would otherwise each miss the other's completion.
    const task = await lockTask(trx, taskId);
    if (task?.status !== 'processing' || (input.holder !== undefined && task.claimed_by !== input.holder)) return undefined;
    const at = new Date().toISOString();
    const recorded = await updateImage(trx, taskId, image.idx, { status: 'completed', ...stored, error: null, finished_at: at }, ['submitted', 'running']);
    if (!recorded) return undefined;
    const images = await imagesOfTask(trx, taskId);
    const done = images.filter((i) => i.status === 'completed');
    const resultPath = JSON.stringify(done.map((i) => join(input.dataDir, i.file_path!)));
    const frameImage: FrameImage = { index: image.idx, width: stored.width, height: stored.height, seed: image.seed, contentType: stored.content_type, bytes: stored.bytes };
    const taskCompleted = done.length === images.length;
    if (taskCompleted) {
      const frame = await writeFrame(
        trx,
        taskId,
        { status: 'completed', progress: 100, result_path: resultPath, finished_at: at, claimed_by: null, lease_expires_at: null },
        { ...emptyFrame(taskId, 'completed', 100), image: frameImage },
        ['processing'],
      );
      if (!frame) return undefined;
      written = await webhooks.record(trx, taskId, ['output', 'completed']);
      return { frame, done, taskCompleted };
    }
    const { progress, etaSeconds } = input.progressWith(done.length);
    const frame = await writeFrame(
      trx,
      taskId,
      { progress, result_path: resultPath },
      { ...emptyFrame(taskId, 'processing', progress), imageIndex: image.idx, image: frameImage, etaSeconds },
      ['processing'],
    );
    if (!frame) return undefined;
    written = await webhooks.record(trx, taskId, ['output']);
    return { frame, done, taskCompleted };
  });
  if (written > 0) webhooks.committed();
  return completed;
}
