import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { insertImages } from '../src/db/images.js';
import { findFinishedBefore, insertTask } from '../src/db/tasks.js';
import { FINAL_TASK_STATUSES, type TaskStatus } from '../src/db/types.js';
import { FileStore } from '../src/storage/file-store.js';
import { deleteOldTasks } from '../src/tasks/cleanup.js';
import { forEachDialect } from './helpers/databases.js';

const DAY = 86_400_000;

forEachDialect('cleanup in batches', (ctx) => {
  let dir: string;
  let store: FileStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kontext-cleanup-'));
    store = new FileStore(dir);
  });
  afterEach(async () => {
    store.close();
    await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  /** A task with 2 images and their folder on disk; `created` and `finished` are days ago. */
  const stored = async (status: TaskStatus, created: number, finished: number | null): Promise<string> => {
    const id = `t${String(++n).padStart(4, '0')}`;
    const iso = (days: number) => new Date(Date.now() - days * DAY + n).toISOString();
    await insertTask(ctx.db, {
      id,
      description: id,
      status,
      created_at: iso(created),
      updated_at: iso(finished ?? created),
      finished_at: finished === null ? null : iso(finished),
    });
    await insertImages(ctx.db, [0, 1].map((idx) => ({ task_id: id, idx, seed: idx, prompt_id: `${id}-${idx}`, status: 'completed' as const, file_path: `images/${id}/${idx}.png` })));
    await mkdir(join(dir, 'images', id), { recursive: true });
    for (const idx of [0, 1]) await writeFile(join(dir, 'images', id, `${idx}.png`), 'png');
    return id;
  };

  it('deletes every expired task with its rows and folder over several batches, and keeps the rest', async () => {
    const expired: string[] = [];
    for (let i = 0; i < 23; i++) expired.push(await stored(FINAL_TASK_STATUSES[i % 3]!, 40 - i / 10, 30 - i / 10));
    const kept = [
      await stored('completed', 1, 1), // recent
      await stored('completed', 40, 2), // created long ago, finished recently
      await stored('pending', 40, null),
      await stored('processing', 40, null),
    ];
    const deleted = await deleteOldTasks({ db: ctx.db, store, days: 7, batch: 5, concurrency: 3 });
    expect(deleted).toBe(expired.length);
    const tasks = await ctx.db.selectFrom('tasks').select('id').orderBy('id').execute();
    expect(tasks.map((t) => t.id)).toEqual(kept);
    const images = await ctx.db.selectFrom('images').select('task_id').distinct().orderBy('task_id').execute();
    expect(images.map((i) => i.task_id)).toEqual(kept);
    expect((await readdir(join(dir, 'images'))).sort()).toEqual(kept);
    for (const id of expired) expect(existsSync(join(dir, 'images', id))).toBe(false);
    if (ctx.dialect === 'sqlite') {
      // Checkpoints ran in a worker meanwhile; the connection's own come back afterwards.
      const { rows } = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(ctx.db);
      expect(Number(rows[0]!.wal_autocheckpoint)).toBe(1000);
    }
  });

  it('finds the oldest finished tasks first, across the final statuses, no more than asked', async () => {
    const cancelled = await stored('cancelled', 50, 45);
    const completed = await stored('completed', 49, 44);
    const failed = await stored('failed', 48, 43);
    await stored('completed', 47, 3);
    const found = await findFinishedBefore(ctx.db, new Date(Date.now() - 7 * DAY).toISOString(), 2);
    expect(found.map((t) => t.id)).toEqual([cancelled, completed]);
    const all = await findFinishedBefore(ctx.db, new Date(Date.now() - 7 * DAY).toISOString(), 10);
    expect(all.map((t) => t.id)).toEqual([cancelled, completed, failed]);
  });
});

describe('cleanup', () => {
  it('runs with no finished task at all', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kontext-cleanup-empty-'));
    try {
      const { openDatabase } = await import('../src/db/database.js');
      const db = await openDatabase({ file: join(dir, 'kontext.db') });
      const store = new FileStore(dir);
      expect(await deleteOldTasks({ db, store, days: 0 })).toBe(0);
      store.close();
      await db.destroy();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
