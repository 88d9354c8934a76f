import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/db/database.js';
import { insertImages } from '../src/db/images.js';
import { openSideWriter } from '../src/db/side-writer.js';
import { WriteHealth } from '../src/db/write-health.js';
import { deleteTasksQuery, insertTask } from '../src/db/tasks.js';
import { emptyDisk, fillDisk, smallDisk } from './helpers/small-disk.js';

const at = new Date().toISOString();

describe('side writer (SQLite: a connection in a worker thread)', () => {
  let dir: string;
  let file: string;
  let db: Db;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kontext-side-writer-'));
    file = join(dir, 'kontext.db');
    db = await openDatabase({ file });
    for (const id of ['a', 'b']) {
      await insertTask(db, { id, description: id, status: 'completed', created_at: at, updated_at: at, finished_at: at });
      await insertImages(db, [{ task_id: id, idx: 0, seed: 0, prompt_id: id, status: 'completed', file_path: `images/${id}/0.png` }]);
    }
  });
  afterEach(async () => {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const autocheckpoint = async () => Number((await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(db)).rows[0]!.wal_autocheckpoint);

  it('waits for another connection\'s write lock off the event loop, then deletes with the foreign keys on (image rows go too)', async () => {
    const writer = await openSideWriter(db);
    const holder = new BetterSqlite3(file);
    try {
      holder.exec('BEGIN IMMEDIATE');
      let settled = false;
      const done = writer.run(deleteTasksQuery(db, ['a'])).finally(() => (settled = true));
      // On this thread the statement would block the loop (or fail at once with SQLITE_BUSY): timers fire while it waits.
      let ticks = 0;
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        ticks++;
      }
      expect(ticks).toBe(5);
      expect(settled).toBe(false);
      expect((await db.selectFrom('tasks').select('id').orderBy('id').execute()).map((t) => t.id)).toEqual(['a', 'b']);
      holder.exec('COMMIT');
      await done;
      expect((await db.selectFrom('tasks').select('id').execute()).map((t) => t.id)).toEqual(['b']);
      expect((await db.selectFrom('images').select('task_id').execute()).map((i) => i.task_id)).toEqual(['b']);
    } finally {
      holder.close();
      await writer.close();
    }
  });

  it('runs a long statement while the event loop goes on (on this thread, no timer would fire until it ended)', async () => {
    const writer = await openSideWriter(db);
    try {
      // A delete that counts to a million first: a few hundred ms of CPU inside one statement.
      const slow = sql`delete from tasks where id in (
        with recursive n(x) as (select 1 union all select x + 1 from n where x < 1000000) select 'a' from n where x = 1000000)`.compile(db);
      let settled = false;
      let ticks = 0;
      const timer = setInterval(() => settled || ticks++, 5);
      await writer.run(slow).finally(() => (settled = true));
      clearInterval(timer);
      expect(ticks).toBeGreaterThanOrEqual(3);
      expect((await db.selectFrom('tasks').select('id').execute()).map((t) => t.id)).toEqual(['b']);
    } finally {
      await writer.close();
    }
  });

  it("rejects with SQLite's error and code, and goes on working after it", async () => {
    const writer = await openSideWriter(db, { busyTimeoutMs: 30 });
    const holder = new BetterSqlite3(file);
    try {
      holder.exec('BEGIN IMMEDIATE');
      await expect(writer.run(deleteTasksQuery(db, ['a']))).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
      holder.exec('ROLLBACK');
      const duplicate = db.insertInto('tasks').values({ id: 'b', description: 'again', status: 'pending', created_at: at, updated_at: at }).compile();
      await expect(writer.run(duplicate)).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY', message: expect.stringContaining('tasks.id') });
      await writer.run(deleteTasksQuery(db, ['a', 'b']));
      expect(await db.selectFrom('tasks').select('id').execute()).toEqual([]);
    } finally {
      holder.close();
      await writer.close();
    }
  });

  it('tells the WriteHealth the database was opened with: a failed statement makes it fail (/ready 503), the next one that succeeds clears it', async () => {
    const health = new WriteHealth({ probeIntervalMs: 60_000 });
    const other = await openDatabase({ file, health });
    const writer = await openSideWriter(other, { busyTimeoutMs: 30 });
    const holder = new BetterSqlite3(file);
    try {
      holder.exec('BEGIN IMMEDIATE');
      await expect(writer.run(deleteTasksQuery(other, ['a']))).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
      expect(health.ok).toBe(false);
      expect(health.reason).toBe('the database is locked by another process');
      holder.exec('ROLLBACK');
      await writer.run(deleteTasksQuery(other, ['a']));
      expect(health.ok).toBe(true);
    } finally {
      holder.close();
      health.stop();
      await writer.close();
      await other.destroy();
    }
  });

  it('a full disk in the worker (SQLITE_FULL) fails the WriteHealth with the full disk as its reason; once there is room the next statement succeeds and clears it', async () => {
    const disk = await smallDisk('8m');
    const health = new WriteHealth({ probeIntervalMs: 60_000 });
    const onDisk = await openDatabase({ file: join(disk.path, 'kontext.db'), health });
    const writer = await openSideWriter(onDisk);
    try {
      // Bigger than anything in the write-ahead log so far: the worker's connection must grow a file.
      const big = (id: string) => onDisk.insertInto('tasks').values({ id, description: 'x'.repeat(1024 * 1024), status: 'pending', created_at: at, updated_at: at }).compile();
      await fillDisk(disk.path);
      await expect(writer.run(big('full'))).rejects.toMatchObject({ code: 'SQLITE_FULL' });
      expect(health.ok).toBe(false);
      expect(health.reason).toBe('the disk holding the database is full');
      await emptyDisk(disk.path);
      await writer.run(big('room'));
      expect(health.ok).toBe(true);
      expect((await onDisk.selectFrom('tasks').select('id').execute()).map((t) => t.id)).toEqual(['room']);
    } finally {
      health.stop();
      await writer.close();
      await onDisk.destroy();
      await disk.dispose();
    }
  });

  it('turns the connection\'s automatic checkpoints off while open, checkpoints in the worker, and restores them on close', async () => {
    expect(await autocheckpoint()).toBe(1000);
    const writer = await openSideWriter(db);
    expect(await autocheckpoint()).toBe(0);
    // Half a megabyte committed by the worker stays in the WAL (no automatic checkpoint on either connection)...
    const dbBytes = () => statSync(file).size;
    const before = dbBytes();
    await writer.run(db.insertInto('tasks').values({ id: 'big', description: 'x'.repeat(512 * 1024), status: 'pending', created_at: at, updated_at: at }).compile());
    expect(dbBytes()).toBe(before);
    // ...until a checkpoint copies it into the database file.
    await writer.checkpoint();
    expect(dbBytes()).toBeGreaterThan(before + 512 * 1024);
    await writer.close();
    expect(await autocheckpoint()).toBe(1000);
    expect((await db.selectFrom('tasks').select('id').orderBy('id').execute()).map((t) => t.id)).toEqual(['a', 'b', 'big']);
  });

  it('close() stops the worker also when the database was closed first (a service stopping under a cleanup)', async () => {
    const other = await openDatabase({ file });
    const writer = await openSideWriter(other);
    await other.destroy();
    await expect(writer.close()).rejects.toThrow();
    await expect(writer.run(deleteTasksQuery(db, ['a']))).rejects.toThrow('the side writer stopped');
  });

  it('a writer whose worker is gone rejects every statement instead of waiting forever', async () => {
    const writer = await openSideWriter(db);
    await writer.close();
    await expect(writer.run(deleteTasksQuery(db, ['a']))).rejects.toThrow('the side writer stopped');
  });
});

describe('side writer (SQLite not in WAL mode)', () => {
  it('runs the statements through the handle itself', async () => {
    const db = await openDatabase({ file: ':memory:' });
    try {
      await insertTask(db, { id: 'a', description: 'a', status: 'completed', created_at: at, updated_at: at, finished_at: at });
      const writer = await openSideWriter(db);
      await writer.run(deleteTasksQuery(db, ['a']));
      await writer.checkpoint();
      await writer.close();
      expect(await db.selectFrom('tasks').select('id').execute()).toEqual([]);
    } finally {
      await db.destroy();
    }
  });
});
