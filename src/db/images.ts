/**
 * Queries on `images`, one row per image of a task: the only module that writes SQL for that table.
 * Status changes are called only from the transitions (src/tasks/transitions/).
 */
import { sql } from 'kysely';
import type { Db } from './database.js';
import { dialectOf } from './dialect.js';
import { ReusedQuery } from './reused-query.js';
import type { ImageRow, ImageStatus, ImageUpdate, NewImage, TaskStatus } from './types.js';

export async function insertImages(db: Db, images: NewImage[]): Promise<void> {
  if (images.length) await db.insertInto('images').values(images).execute();
}

const imagesByTaskId = new ReusedQuery<ImageRow>();

/** The images of one task, by index (compiled once: every status read asks). */
export async function imagesOfTask(db: Db, taskId: string): Promise<ImageRow[]> {
  return imagesByTaskId.run(db, 'task', [taskId], () => db.selectFrom('images').selectAll().where('task_id', '=', taskId).orderBy('idx'));
}

const imagesOfManyTasks = new ReusedQuery<ImageRow>();

/** The images of many tasks in one query (for DataLoader), compiled once per number of tasks. */
export async function imagesOfTasks(db: Db, taskIds: readonly string[]): Promise<ImageRow[]> {
  if (taskIds.length === 0) return [];
  return imagesOfManyTasks.run(db, String(taskIds.length), taskIds, () =>
    db.selectFrom('images').selectAll().where('task_id', 'in', taskIds).orderBy('task_id').orderBy('idx'),
  );
}

export async function findImage(db: Db, taskId: string, idx: number): Promise<ImageRow | undefined> {
  return db.selectFrom('images').selectAll().where('task_id', '=', taskId).where('idx', '=', idx).executeTakeFirst();
}

/** The images whose ComfyUI prompt is one of `promptIds`, with their task's status. */
export async function imagesByPromptId(db: Db, promptIds: readonly string[]): Promise<(ImageRow & { task_status: TaskStatus })[]> {
  if (promptIds.length === 0) return [];
  return db
    .selectFrom('images')
    .innerJoin('tasks', 'tasks.id', 'images.task_id')
    .selectAll('images')
    .select('tasks.status as task_status')
    .where('images.prompt_id', 'in', promptIds)
    .execute();
}

/**
 * Keeps other replicas from submitting to `worker` until the transaction ends, so that counting its
 * prompts and adding one is one step (PostgreSQL: an advisory lock keyed by the server; SQLite's
 * transaction is alone anyway). Call inside a transaction.
 */
export async function lockWorkerSlots(trx: Db, worker: string): Promise<void> {
  if (dialectOf(trx) === 'postgres') await sql`select pg_advisory_xact_lock(hashtext(${`kontext-worker:${worker}`}))`.execute(trx);
}

/** Prompts on `worker` now, of every task and replica: images submitted to it or running there. */
export async function countInFlightOn(db: Db, worker: string): Promise<number> {
  const { n } = await db
    .selectFrom('images')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('worker', '=', worker)
    .where('status', 'in', ['submitted', 'running'])
    .executeTakeFirstOrThrow();
  return Number(n);
}

/** Images of this instance's processing tasks waiting for a worker, oldest task first. */
export async function waitingImages(db: Db, instance: string, limit: number): Promise<ImageRow[]> {
  return db
    .selectFrom('images')
    .innerJoin('tasks', 'tasks.id', 'images.task_id')
    .selectAll('images')
    .where('tasks.status', '=', 'processing')
    .where('tasks.claimed_by', '=', instance)
    .where('images.status', '=', 'pending')
    .orderBy('tasks.started_at')
    .orderBy('tasks.id')
    .orderBy('images.idx')
    .limit(limit)
    .execute();
}

/**
 * Assigns a pending image to a worker, atomically: only one caller wins. Returns the row, or
 * undefined when someone else took it or it is no longer pending.
 */
export async function assignImage(db: Db, taskId: string, idx: number, worker: string, now: string): Promise<ImageRow | undefined> {
  return db
    .updateTable('images')
    .set((eb) => ({ status: 'submitted', worker, submitted_at: now, attempts: eb('attempts', '+', 1), error: null }))
    .where('task_id', '=', taskId)
    .where('idx', '=', idx)
    .where('status', '=', 'pending')
    .returningAll()
    .executeTakeFirst();
}

/** Updates an image if it is still in one of `from` (so a late event cannot undo a final state). */
export async function updateImage(
  db: Db,
  taskId: string,
  idx: number,
  changes: ImageUpdate,
  from: readonly ImageStatus[] = ['pending', 'submitted', 'running'],
): Promise<boolean> {
  const r = await db
    .updateTable('images')
    .set(changes)
    .where('task_id', '=', taskId)
    .where('idx', '=', idx)
    .where('status', 'in', from)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Marks every unfinished image of a task; returns them as they were. Call it inside a transaction. */
export async function finishOpenImages(trx: Db, taskId: string, status: 'cancelled' | 'failed', now: string): Promise<ImageRow[]> {
  {
    const open = await trx
      .selectFrom('images')
      .selectAll()
      .where('task_id', '=', taskId)
      .where('status', 'in', ['pending', 'submitted', 'running'])
      .execute();
    if (open.length) {
      await trx
        .updateTable('images')
        .set({ status, finished_at: now })
        .where('task_id', '=', taskId)
        .where('status', 'in', ['pending', 'submitted', 'running'])
        .execute();
    }
    return open;
  }
}

/** Stored image files of tasks (for cleanup and the file check). */
export async function imageFiles(db: Db, taskIds?: readonly string[]): Promise<Pick<ImageRow, 'task_id' | 'idx' | 'file_path' | 'bytes'>[]> {
  let q = db.selectFrom('images').select(['task_id', 'idx', 'file_path', 'bytes']).where('file_path', 'is not', null);
  if (taskIds) {
    if (taskIds.length === 0) return [];
    q = q.where('task_id', 'in', taskIds);
  }
  return q.execute();
}

/** Every completed image with its recorded file and size, by task and index (for `kontext images check`). */
export async function completedImages(db: Db): Promise<Pick<ImageRow, 'task_id' | 'idx' | 'file_path' | 'bytes'>[]> {
  return db
    .selectFrom('images')
    .select(['task_id', 'idx', 'file_path', 'bytes'])
    .where('status', '=', 'completed')
    .orderBy('task_id')
    .orderBy('idx')
    .execute();
}
