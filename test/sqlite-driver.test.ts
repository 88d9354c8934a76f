import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/db/database.js';
import { beat } from '../src/db/heartbeats.js';
import { WriteHealth } from '../src/db/write-health.js';

let dir: string;
let db: Db | undefined;
let other: BetterSqlite3.Database | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-driver-'));
});
afterEach(async () => {
  other?.close();
  other = undefined;
  await db?.destroy();
  db = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A second process's connection (the CLI, a backup) holding the write lock. */
function holdWriteLock(file: string): BetterSqlite3.Database {
  const conn = new BetterSqlite3(file);
  conn.prepare('begin immediate').run();
  return conn;
}

describe('the SQLite driver under a locked database', () => {
  it('waits for another connection\'s write lock without blocking the event loop, then writes', async () => {
    const file = join(dir, 'k.db');
    db = await openDatabase({ file });
    other = holdWriteLock(file);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    const write = beat(db, 'a', 'now');
    let wrote = false;
    void write.then(() => (wrote = true));
    // The lock is still held: timers keep firing (with SQLite's busy_timeout of 5 s they froze).
    await new Promise((r) => setTimeout(r, 300));
    expect(wrote).toBe(false);
    expect(ticks).toBeGreaterThan(5);
    other.prepare('commit').run();
    await write;
    clearInterval(ticker);
    expect(await db.selectFrom('heartbeats').selectAll().execute()).toEqual([{ instance: 'a', at: 'now' }]);
  });

  it('gives up after busyTimeoutMs with SQLITE_BUSY, reports it, and a probe notices when the lock is gone', async () => {
    const file = join(dir, 'k.db');
    const health = new WriteHealth({ probeIntervalMs: 50 });
    const changes: boolean[] = [];
    health.on('change', (ok) => changes.push(ok));
    db = await openDatabase({ file, health, busyTimeoutMs: 200 });
    health.setProbe(() => beat(db!, 'probe', new Date().toISOString()));
    other = holdWriteLock(file);
    await expect(beat(db, 'a', 'now')).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
    expect(health.ok).toBe(false);
    expect(health.error).toMatch(/locked by another process/);
    // Reads go on while the lock is held (WAL).
    expect(await db.selectFrom('heartbeats').selectAll().execute()).toEqual([]);
    other.prepare('commit').run();
    const deadline = Date.now() + 5000;
    while (!health.ok && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(health.ok).toBe(true);
    expect(changes).toEqual([false, true]);
  });

  it('runs concurrent transactions one after the other, never interleaved', async () => {
    db = await openDatabase({ file: join(dir, 'k.db') });
    const d = db;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        d.transaction().execute(async (trx) => {
          const row = await trx.selectFrom('heartbeats').select('at').where('instance', '=', 'counter').executeTakeFirst();
          await new Promise((r) => setTimeout(r, i % 3)); // another transaction would slip in here
          const next = String(Number(row?.at ?? 0) + 1);
          await trx.insertInto('heartbeats').values({ instance: 'counter', at: next }).onConflict((oc) => oc.column('instance').doUpdateSet({ at: next })).execute();
        }),
      ),
    );
    expect(await d.selectFrom('heartbeats').select('at').where('instance', '=', 'counter').executeTakeFirst()).toEqual({ at: '20' });
  });

  it('a full disk inside a transaction surfaces SQLITE_FULL, not "cannot rollback", and the database works afterwards', async () => {
    const file = join(dir, 'k.db');
    const health = new WriteHealth();
    db = await openDatabase({ file, health });
    const pages = Number((await sql<{ page_count: number }>`pragma page_count`.execute(db)).rows[0]!.page_count);
    // A database that may not grow stands for a full disk.
    await sql.raw(`pragma max_page_count = ${pages + 2}`).execute(db);
    const big = 'x'.repeat(64 * 1024);
    const d = db;
    const failing = d.transaction().execute(async (trx) => {
      for (let i = 0; i < 10; i++) await trx.insertInto('heartbeats').values({ instance: `i${i}`, at: big }).execute();
    });
    await expect(failing).rejects.toMatchObject({ code: 'SQLITE_FULL' });
    expect(health.error).toMatch(/disk holding the database is full/);
    await sql.raw('pragma max_page_count = 1073741823').execute(db);
    await beat(db, 'after', 'now');
    expect(health.ok).toBe(true);
    expect(await db.selectFrom('heartbeats').select('instance').execute()).toEqual([{ instance: 'after' }]);
  });
});
