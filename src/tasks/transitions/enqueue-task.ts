/** pending: a new task and its images enter the queue, within its key's limits and the queue's ceiling. */
import type { KeyLimits } from '../../auth/caller.js';
import type { Db } from '../../db/database.js';
import { insertImages } from '../../db/images.js';
import { countPending, countUnfinished, createdSince, lockQuotas, oldestCreatedSince } from '../../db/quotas.js';
import { insertTask } from '../../db/tasks.js';
import type { NewImage, NewTask } from '../../db/types.js';
import { emptyFrame, type ProgressFrame } from '../progress-frame.js';
import { QuotaExceededError } from '../quota-exceeded-error.js';
import { writeFrame } from './write-frame.js';

/** What a new task is checked against. */
export interface QuotaCheck {
  /** The key the task is for; null (the open service) has no per-key limits. */
  ownerKeyId: string | null;
  /** The key's limits (Caller.limits); absent ones do not apply. */
  limits: KeyLimits;
  /** Pending tasks of everyone beyond which nothing is queued (MAX_QUEUED_TASKS). */
  maxQueuedTasks: number;
  /** Images the new task asks for (1 for a check before the request is read). */
  images: number;
  now: Date;
}

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 3_600_000;
/** Retry-After for the concurrency limits: a slot frees when some task ends, which nothing predicts cheaply. */
const CONCURRENCY_RETRY_S = 5;
const QUEUE_FULL_RETRY_S = 10;

/** Whole seconds from `now` until `at` (ISO) plus `windowMs`, at least 1. */
function secondsUntil(at: string, windowMs: number, now: Date): number {
  return Math.max(1, Math.ceil((Date.parse(at) + windowMs - now.getTime()) / 1000));
}

/**
 * Throws QuotaExceededError (naming the limit and its value, with when to try again) when a task of
 * `check.images` images would exceed a limit now. Exact only inside the enqueue transaction after
 * lockQuotas; outside it, a cheap pre-check.
 */
export async function checkQuotas(db: Db, check: QuotaCheck): Promise<void> {
  const { ownerKeyId: owner, limits, now } = check;
  if (owner !== null && limits.maxConcurrent !== undefined) {
    const unfinished = await countUnfinished(db, owner);
    if (unfinished >= limits.maxConcurrent) {
      throw new QuotaExceededError(
        'max_concurrent',
        `max_concurrent: this key has ${unfinished} tasks pending or processing and its limit is ${limits.maxConcurrent}; try again when one ends`,
        CONCURRENCY_RETRY_S,
      );
    }
  }
  if (owner !== null && limits.ratePerMinute !== undefined) {
    const since = new Date(now.getTime() - MINUTE_MS).toISOString();
    const { tasks } = await createdSince(db, owner, since);
    if (tasks >= limits.ratePerMinute) {
      // Below the limit once this many of the window's oldest tasks have left it.
      const leaving = tasks - limits.ratePerMinute + 1;
      const last = (await oldestCreatedSince(db, owner, since, leaving)).at(-1);
      throw new QuotaExceededError(
        'rate',
        `rate: this key created ${tasks} tasks in the last 60 s and its limit is ${limits.ratePerMinute} per minute`,
        last ? secondsUntil(last.createdAt, MINUTE_MS, now) : 60,
      );
    }
  }
  if (owner !== null && limits.imagesPerDay !== undefined) {
    const limit = limits.imagesPerDay;
    if (check.images > limit) {
      throw new QuotaExceededError('images_per_day', `images_per_day: this request asks for ${check.images} images and the key's limit is ${limit} per 24 hours`, DAY_MS / 1000);
    }
    const since = new Date(now.getTime() - DAY_MS).toISOString();
    const { images } = await createdSince(db, owner, since);
    if (images + check.images > limit) {
      // Fits once enough of the window's oldest images have left it; each task has at least one, so
      // that many tasks suffice (never a scan of the whole day under the quota lock).
      const excess = images + check.images - limit;
      let freed = 0;
      let retry = DAY_MS / 1000;
      for (const row of await oldestCreatedSince(db, owner, since, excess)) {
        freed += row.images;
        if (images - freed + check.images <= limit) {
          retry = secondsUntil(row.createdAt, DAY_MS, now);
          break;
        }
      }
      throw new QuotaExceededError(
        'images_per_day',
        `images_per_day: this key asked for ${images} images in the last 24 hours, this request adds ${check.images}, and its limit is ${limit}`,
        retry,
      );
    }
  }
  const pending = await countPending(db);
  if (pending >= check.maxQueuedTasks) {
    throw new QuotaExceededError(
      'max_queued_tasks',
      `max_queued_tasks: ${pending} tasks are queued and the service's limit (MAX_QUEUED_TASKS) is ${check.maxQueuedTasks}; try again later`,
      QUEUE_FULL_RETRY_S,
    );
  }
}

/**
 * Inserts a pending task with its images and its first frame, in one transaction. With `quota`, the
 * task is first checked against its owner's limits and the queue's ceiling in that transaction, alone
 * (SQLite's `begin immediate`; PostgreSQL's advisory lock): two replicas never both take the last
 * free place. Throws QuotaExceededError then, with nothing stored. @default no checks
 */
export async function enqueueTask(
  db: Db,
  task: NewTask & { status: 'pending' },
  images: NewImage[],
  quota?: { limits: KeyLimits; maxQueuedTasks: number },
): Promise<ProgressFrame> {
  return db.transaction().execute(async (trx) => {
    if (quota) {
      await lockQuotas(trx);
      const now = new Date(task.created_at);
      await checkQuotas(trx, { ownerKeyId: task.owner_key_id ?? null, limits: quota.limits, maxQueuedTasks: quota.maxQueuedTasks, images: images.length, now });
    }
    await insertTask(trx, task);
    await insertImages(trx, images);
    return (await writeFrame(trx, task.id, {}, emptyFrame(task.id, 'pending', 0)))!;
  });
}
