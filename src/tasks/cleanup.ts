/**
 * Deleting old finished tasks with their files (TASK_CLEANUP_DAYS): used by the engine's timer and
 * by `kontext cleanup`. An upload shared by several tasks stays while one of them still uses it.
 * It runs in the service's process next to requests, so it goes in batches (a few hundred rows per
 * database round) with a turn of the event loop between them, deletes the rows on a connection of
 * its own (on SQLite in a worker thread, side-writer.ts) and the files a bounded number at a time
 * (each an async rm on libuv's threads).
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Db } from '../db/database.js';
import { imageFiles } from '../db/images.js';
import { openSideWriter, type SideWriter } from '../db/side-writer.js';
import { deleteTasksQuery, findFinishedBefore } from '../db/tasks.js';
import { deleteUnreferenced } from '../db/uploads.js';
import { silentLogger, type Logger } from '../log.js';
import type { BlobStore } from '../storage/blob-store.js';

/** Options of `deleteOldTasks`. */
export interface CleanupOptions {
  db: Db;
  /** Where the images and uploads are (STORAGE_URL, DATA_DIR by default). */
  store: BlobStore;
  /** Tasks finished more than this many days ago go; 0 means every finished task. */
  days: number;
  /** Tasks deleted per database round (each with its image rows: ~40 ms for 200 with 3 images each on SQLite, ~5 ms for 50). @default 50 */
  batch?: number;
  /** File deletions in flight at once. @default 16 */
  concurrency?: number;
  log?: Logger;
}

/** Deletes finished tasks older than `days` with their images and unshared uploads; returns how many. */
export async function deleteOldTasks(options: CleanupOptions): Promise<number> {
  const { db, store, days } = options;
  const log = options.log ?? silentLogger;
  const cutoff = new Date(Date.now() - days * 86_400_000).toISOString();
  const concurrency = options.concurrency ?? 16;
  // Made with the first batch: a run with nothing to delete (most of them) starts no worker thread.
  let writer: SideWriter | undefined;
  let deleted = 0;
  try {
    for (;;) {
      const tasks = await findFinishedBefore(db, cutoff, options.batch ?? 50);
      if (tasks.length === 0) return deleted;
      writer ??= await openSideWriter(db);
      const ids = tasks.map((t) => t.id);
      // Files first: a crash in between leaves rows without files (reported by `kontext images check`), never files without rows.
      // The task's folder holds its images, their variants and (folder store) older versions' downloads:
      // one folder delete each; files recorded elsewhere (rows of older versions) one by one.
      const elsewhere = (await imageFiles(db, ids)).filter((f) => !f.file_path!.startsWith(`images/${f.task_id}/`)).map((f) => f.file_path!);
      await eachLimited(elsewhere, concurrency, (key) => deleteStored(store, key));
      await eachLimited(ids, concurrency, (id) => store.deleteFolder(`images/${id}`));
      await writer.run(deleteTasksQuery(db, ids));
      const shas = [...new Set(tasks.map((t) => t.upload_sha256).filter((s): s is string => s !== null))];
      await eachLimited(await deleteUnreferenced(db, shas), concurrency, (u) => deleteStored(store, u.file_path));
      deleted += ids.length;
      log.info('old tasks deleted', { count: ids.length, older_than_days: days });
      // Requests waiting behind this batch go first, while the WAL it wrote is checkpointed elsewhere.
      await Promise.all([writer.checkpoint(), yieldToLoop()]);
    }
  } finally {
    await writer?.close();
  }
}

/** Runs `fn` over `items`, at most `limit` at once; the first failure is thrown once all started ones settle. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  const lanes = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, lane));
  const failed = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Deletes a recorded file; a path no store accepts as a key (a hand-edited row) was never stored, so there is nothing to delete. */
async function deleteStored(store: BlobStore, key: string): Promise<void> {
  try {
    await store.delete(key);
  } catch (err) {
    if (!(err instanceof TypeError && err.message.startsWith('invalid storage key'))) throw err;
  }
}
