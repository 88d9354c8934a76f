import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, PAGE_CACHE_KIB, type Db } from '../src/db/database.js';
import { beat } from '../src/db/heartbeats.js';
import { assignImage, finishOpenImages, imagesOfTask, imagesOfTasks, insertImages, waitingImages } from '../src/db/images.js';
import {
  claimNextPending,
  countByStatus,
  findRecoverable,
  findTask,
  insertTask,
  listTasks,
  queuePosition,
  saveFrame,
} from '../src/db/tasks.js';
import { deleteUnreferenced, findUpload, saveUpload } from '../src/db/uploads.js';
import { createTestDatabase, forEachDialect } from './helpers/databases.js';

forEachDialect('database', (ctx) => {
  let db: Db;
  beforeEach(() => {
    db = ctx.db;
  });

  let clock = 0;
  const at = () => new Date(Date.UTC(2026, 0, 1) + ++clock * 1000).toISOString();
  const task = (id: string, extra: Record<string, unknown> = {}) =>
    insertTask(db, { id, description: `task ${id}`, status: 'pending', created_at: at(), updated_at: at(), ...extra });

  it('enforces foreign keys', async () => {
    await expect(insertImages(db, [{ task_id: 'nope', idx: 0, seed: 1, prompt_id: 'p', status: 'pending' }])).rejects.toThrow(/FOREIGN KEY|foreign key/);
  });

  it('returns numbers for integer, bigint and real columns and for counts', async () => {
    await task('a', { base_seed: Number.MAX_SAFE_INTEGER, guidance: 3.5 });
    await insertImages(db, [{ task_id: 'a', idx: 0, seed: Number.MAX_SAFE_INTEGER, prompt_id: 'p', status: 'pending' }]);
    const row = (await findTask(db, 'a'))!;
    expect(row).toMatchObject({ base_seed: Number.MAX_SAFE_INTEGER, guidance: 3.5, count: 1, steps: 20, seq: 0, progress: 0 });
    expect((await imagesOfTasks(db, ['a']))[0]).toMatchObject({ seed: Number.MAX_SAFE_INTEGER, attempts: 0 });
    expect(await countByStatus(db)).toEqual({ pending: 1, processing: 0, completed: 0, failed: 0, cancelled: 0 });
    const { n } = await db.selectFrom('tasks').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    expect(n).toBe(1);
  });

  it('keeps the first row of a repeated upload and updates a heartbeat in place (on conflict)', async () => {
    const up = (file_path: string) => saveUpload(db, { sha256: 's1', file_path, bytes: 1, content_type: 'image/png', width: 1, height: 1, created_at: at() });
    await up('uploads/first.png');
    await up('uploads/second.png');
    expect((await findUpload(db, 's1'))?.file_path).toBe('uploads/first.png');
    await beat(db, 'i1', 'one');
    await beat(db, 'i1', 'two');
    expect(await db.selectFrom('heartbeats').selectAll().execute()).toEqual([{ instance: 'i1', at: 'two' }]);
  });

  it('claims pending tasks oldest first and never more than the limit', async () => {
    await task('a');
    await task('b');
    await task('c');
    const opts = { instance: 'i1', now: at(), leaseUntil: at(), maxProcessing: 2 };
    expect((await claimNextPending(db, opts))?.id).toBe('a');
    expect((await claimNextPending(db, opts))?.id).toBe('b');
    expect(await claimNextPending(db, opts)).toBeUndefined();
    expect(await countByStatus(db)).toMatchObject({ pending: 1, processing: 2 });
    const c = (await findTask(db, 'c'))!;
    expect(await queuePosition(db, c)).toBe(0);
    expect((await findTask(db, 'a'))?.claimed_by).toBe('i1');
  });

  it('bumps seq atomically for concurrent frames', async () => {
    await task('a');
    const seqs = await Promise.all([1, 2, 3, 4, 5].map((p) => saveFrame(db, 'a', { progress: p }, { progress: p })));
    expect([...seqs].sort()).toEqual([1, 2, 3, 4, 5]);
    expect((await findTask(db, 'a'))?.seq).toBe(5);
    expect(await saveFrame(db, 'a', { progress: 9 }, {}, ['completed'])).toBeUndefined();
    expect(await saveFrame(db, 'missing', { progress: 9 }, {})).toBeUndefined();
  });

  it('pages tasks newest first by (created_at, id), filtered by status', async () => {
    for (const id of ['t1', 't2', 't3', 't4', 't5']) await task(id);
    const first = await listTasks(db, { limit: 2 });
    expect(first.map((t) => t.id)).toEqual(['t5', 't4']);
    const last = first.at(-1)!;
    const next = await listTasks(db, { limit: 10, after: { createdAt: last.created_at, id: last.id } });
    expect(next.map((t) => t.id)).toEqual(['t3', 't2', 't1']);
    expect(await listTasks(db, { limit: 10, status: 'completed' })).toEqual([]);
  });

  it('reuses each compiled read with new parameters: every shape of a task page, tasks and images by id', async () => {
    for (const [i, id] of ['t1', 't2', 't3', 't4', 't5', 't6'].entries()) {
      await task(id, { owner_key_id: i % 2 ? 'k1' : 'k2', status: i < 3 ? 'completed' : 'pending' });
    }
    await insertImages(db, ['t1', 't2', 't3'].flatMap((id) => [1, 0].map((idx) => ({ task_id: id, idx, seed: idx, prompt_id: `${id}-${idx}`, status: 'pending' as const }))));
    const ids = (rows: { id: string }[]) => rows.map((r) => r.id);
    // Each shape twice with other values: the second call runs the SQL compiled by the first.
    for (let round = 0; round < 2; round++) {
      const owner = round ? 'k2' : 'k1';
      const all = ids(await listTasks(db, { limit: 10 }));
      expect(all).toEqual(['t6', 't5', 't4', 't3', 't2', 't1']);
      expect(ids(await listTasks(db, { limit: 2 + round }))).toEqual(all.slice(0, 2 + round));
      const mine = ids(await listTasks(db, { limit: 10, owner }));
      expect(mine).toEqual(round ? ['t5', 't3', 't1'] : ['t6', 't4', 't2']);
      expect(ids(await listTasks(db, { limit: 10, status: round ? 'pending' : 'completed' }))).toEqual(round ? ['t6', 't5', 't4'] : ['t3', 't2', 't1']);
      const cursor = (await findTask(db, round ? 't4' : 't3'))!;
      const after = { createdAt: cursor.created_at, id: cursor.id };
      expect(ids(await listTasks(db, { limit: 10, after }))).toEqual(round ? ['t3', 't2', 't1'] : ['t2', 't1']);
      expect(ids(await listTasks(db, { limit: 10, after, owner, status: 'completed' }))).toEqual(round ? ['t3', 't1'] : ['t2']);
      expect(ids(await listTasks(db, { limit: 10, after, status: 'pending' }))).toEqual([]);
      expect(await findTask(db, round ? 't6' : 't5')).toMatchObject({ id: round ? 't6' : 't5', owner_key_id: round ? 'k1' : 'k2' });
      expect(await findTask(db, round ? 'none' : 'other')).toBeUndefined();
      expect((await imagesOfTask(db, round ? 't2' : 't1')).map((i) => [i.task_id, i.idx])).toEqual([[round ? 't2' : 't1', 0], [round ? 't2' : 't1', 1]]);
      const two = round ? ['t3', 't1'] : ['t2', 't3'];
      expect((await imagesOfTasks(db, two)).map((i) => `${i.task_id}/${i.idx}`)).toEqual([...two].sort().flatMap((id) => [`${id}/0`, `${id}/1`]));
    }
  });

  it('finds processing tasks to recover: its own and lapsed claims of others', async () => {
    await task('mine', { status: 'processing', claimed_by: 'i1', lease_expires_at: '2999-01-01T00:00:00.000Z' });
    await task('lapsed', { status: 'processing', claimed_by: 'i2', lease_expires_at: '2000-01-01T00:00:00.000Z' });
    await task('theirs', { status: 'processing', claimed_by: 'i2', lease_expires_at: '2999-01-01T00:00:00.000Z' });
    const found = await findRecoverable(db, { instance: 'i1', now: new Date().toISOString() });
    expect(found.map((t) => t.id).sort()).toEqual(['lapsed', 'mine']);
  });

  it('hands each waiting image to exactly one worker', async () => {
    await task('a', { status: 'processing', started_at: at(), claimed_by: 'i1' });
    await insertImages(db, [0, 1].map((idx) => ({ task_id: 'a', idx, seed: 10 + idx, prompt_id: `a-${idx}`, status: 'pending' as const })));
    expect((await waitingImages(db, 'i1', 10)).map((i) => i.idx)).toEqual([0, 1]);
    const [w1, w2] = await Promise.all([assignImage(db, 'a', 0, 'http://w1', at()), assignImage(db, 'a', 0, 'http://w2', at())]);
    expect([w1, w2].filter(Boolean)).toHaveLength(1);
    expect((await waitingImages(db, 'i1', 10)).map((i) => i.idx)).toEqual([1]);
    const open = await finishOpenImages(db, 'a', 'cancelled', at());
    expect(open.map((i) => [i.idx, i.status])).toEqual([
      [0, 'submitted'],
      [1, 'pending'],
    ]);
    expect((await imagesOfTasks(db, ['a'])).map((i) => i.status)).toEqual(['cancelled', 'cancelled']);
  });

  it('keeps an upload while any task still refers to it', async () => {
    const up = (sha256: string) =>
      saveUpload(db, { sha256, file_path: `uploads/${sha256}.png`, bytes: 1, content_type: 'image/png', width: 1, height: 1, created_at: at() });
    await up('s1');
    await up('s2');
    await up('s1'); // same content again: no error, one row
    await task('a', { upload_sha256: 's1' });
    const deleted = await deleteUnreferenced(db, ['s1', 's2']);
    expect(deleted.map((u) => u.sha256)).toEqual(['s2']);
  });
});

describe('SQLite only', () => {
  it('uses WAL', async () => {
    const database = await createTestDatabase('sqlite');
    try {
      await database.open();
      const sqlite = new BetterSqlite3((database.target as { file: string }).file);
      expect(sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
      sqlite.close();
    } finally {
      await database.drop();
    }
  });

  it('its connection keeps a page cache of PAGE_CACHE_KIB, not better-sqlite3\'s 16 000 KiB (which reads spread over 100 000 tasks kept missing)', async () => {
    const database = await createTestDatabase('sqlite');
    try {
      const db = await database.open();
      const { rows } = await sql<{ cache_size: number }>`pragma cache_size`.execute(db);
      expect(rows[0]!.cache_size).toBe(-PAGE_CACHE_KIB);
      expect(PAGE_CACHE_KIB).toBeGreaterThanOrEqual(32 * 1024);
    } finally {
      await database.drop();
    }
  });

  it('lists tasks newest first through an index, not a scan and sort', async () => {
    const database = await createTestDatabase('sqlite');
    try {
      const db = await database.open();
      const plan = await sql<{ detail: string }>`explain query plan select * from tasks order by created_at desc, id desc limit 50`.execute(db);
      const steps = plan.rows.map((r) => r.detail).join('; ');
      expect(steps).toMatch(/USING INDEX tasks_newest/);
      expect(steps).not.toMatch(/TEMP B-TREE/);
    } finally {
      await database.drop();
    }
  });
});

describe('a database file left by the old service', () => {
  it('is adopted: its tasks keep their values and gain the new columns with defaults', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kontext-legacy-'));
    const file = join(dir, 'tasks.db');
    const legacy = new BetterSqlite3(file);
    legacy.exec(`CREATE TABLE tasks (id TEXT PRIMARY KEY, description TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
      progress INTEGER DEFAULT 0, result_path TEXT, error_message TEXT,
      created_at DATETIME DEFAULT CURRENT_TIMESTAMP, updated_at DATETIME DEFAULT CURRENT_TIMESTAMP)`);
    legacy.prepare(`INSERT INTO tasks (id, description, status, progress, result_path) VALUES (?, ?, ?, ?, ?)`).run(
      'old-1',
      'a red car',
      'completed',
      100,
      '["outputs/old-1_0.png"]',
    );
    legacy.close();
    const db = await openDatabase({ file });
    try {
      const t = await findTask(db, 'old-1');
      expect(t).toMatchObject({ description: 'a red car', status: 'completed', progress: 100, result_path: '["outputs/old-1_0.png"]' });
      expect(t).toMatchObject({ count: 1, size: '1024x1024', steps: 20, guidance: 2.5, seq: 0 });
    } finally {
      await db.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a data folder that cannot be written gives a readable error', async () => {
    // A plain file where the folder should be: fails the same way as a read-only folder, even as root.
    const dir = await mkdtemp(join(tmpdir(), 'kontext-ro-'));
    const blocker = join(dir, 'not-a-folder');
    await writeFile(blocker, 'x');
    await expect(openDatabase({ file: join(blocker, 'data', 'kontext.db') })).rejects.toThrow(/data folder .*not-a-folder\/data is not writable \(ENOTDIR\); set DATA_DIR/);
    await rm(dir, { recursive: true, force: true });
  });
});
