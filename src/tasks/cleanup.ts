/**
 * Deleting old finished tasks with their files (TASK_CLEANUP_DAYS): used by the engine's timer and
 * by `kontext cleanup`. An upload shared by several tasks stays while one of them still uses it.
 */
import type { Db } from '../db/database.js';
import { imageFiles } from '../db/images.js';
import { deleteTasks, findFinishedBefore } from '../db/tasks.js';
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
  /** Tasks deleted per database round. @default 100 */
  batch?: number;
  log?: Logger;
}

/** Deletes finished tasks older than `days` with their images and unshared uploads; returns how many. */
export async function deleteOldTasks(options: CleanupOptions): Promise<number> {
  const { db, store, days } = options;
  const log = options.log ?? silentLogger;
  const cutoff = new Date(Date.now() - days * 86_400_000).toISOString();
  let deleted = 0;
  for (;;) {
    const tasks = await findFinishedBefore(db, cutoff, options.batch ?? 100);
    if (tasks.length === 0) return deleted;
    const ids = tasks.map((t) => t.id);
    // Files first: a crash in between leaves rows without files (reported by `kontext images check`), never files without rows.
    // The task's folder holds its images, their variants and (folder store) older versions' downloads:
    // one folder delete each; files recorded elsewhere (rows of older versions) one by one.
    for (const f of await imageFiles(db, ids)) if (!f.file_path!.startsWith(`images/${f.task_id}/`)) await deleteStored(store, f.file_path!);
    for (const id of ids) await store.deleteFolder(`images/${id}`);
    await deleteTasks(db, ids);
    const shas = [...new Set(tasks.map((t) => t.upload_sha256).filter((s): s is string => s !== null))];
    for (const u of await deleteUnreferenced(db, shas)) await deleteStored(store, u.file_path);
    deleted += ids.length;
    log.info('old tasks deleted', { count: ids.length, older_than_days: days });
  }
}

/** Deletes a recorded file; a path no store accepts as a key (a hand-edited row) was never stored, so there is nothing to delete. */
async function deleteStored(store: BlobStore, key: string): Promise<void> {
  try {
    await store.delete(key);
  } catch (err) {
    if (!(err instanceof TypeError && err.message.startsWith('invalid storage key'))) throw err;
  }
}
