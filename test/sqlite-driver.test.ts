import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../src/db/database.js';
import { beat } from '../src/db/heartbeats.js';
import { findTask, insertTask, saveFrame } from '../src/db/tasks.js';
import { StatementCache } from '../src/db/statement-cache.js';
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

  it('hands released connections out again: each query is logged once, and a query never runs inside another\'s transaction', async () => {
    let logged = 0;
    db = await openDatabase({ file: join(dir, 'k.db'), onQuery: () => void logged++ });
    const d = db;
    await beat(d, 'counter', '0');
    logged = 0;
    const order: string[] = [];
    // The transaction's connection is released and reused by the reads that waited for it.
    await Promise.all([
      d.transaction().execute(async (trx) => {
        await trx.updateTable('heartbeats').set({ at: '1' }).where('instance', '=', 'counter').execute();
        await new Promise((r) => setTimeout(r, 20));
        order.push('commit');
      }),
      ...Array.from({ length: 5 }, () =>
        d.selectFrom('heartbeats').select('at').where('instance', '=', 'counter').executeTakeFirstOrThrow().then((row) => order.push(row.at)),
      ),
    ]);
    expect(order).toEqual(['commit', '1', '1', '1', '1', '1']);
    for (let i = 0; i < 20; i++) await d.selectFrom('heartbeats').select('at').execute();
    // The update, 5 reads, 20 reads (begin and commit are the driver's own): one event each, reused or new.
    expect(logged).toBe(1 + 5 + 20);
  });

  it('runs hot reads at once, but never inside an open transaction, and logs each', async () => {
    let logged = 0;
    db = await openDatabase({ file: join(dir, 'k.db'), onQuery: () => void logged++ });
    const d = db;
    const at = new Date().toISOString();
    await insertTask(d, { id: 't1', description: 'before', status: 'completed', progress: 100, result_path: null, error_message: null, created_at: at, updated_at: at, count: 1, size: '1024x1024', steps: 20 });
    logged = 0;
    expect((await findTask(d, 't1'))?.description).toBe('before');
    expect(logged).toBe(1);
    // A transaction changes the row, then rolls back: a read made meanwhile must not see the change.
    let inside!: () => void;
    const changed = new Promise<void>((r) => (inside = r));
    const rolledBack = d
      .transaction()
      .execute(async (trx) => {
        await trx.updateTable('tasks').set({ description: 'uncommitted' }).where('id', '=', 't1').execute();
        inside();
        await new Promise((r) => setTimeout(r, 20));
        throw new Error('roll back');
      })
      .catch((err: Error) => err.message);
    await changed;
    const read = findTask(d, 't1');
    expect(await rolledBack).toBe('roll back');
    expect((await read)?.description).toBe('before');
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
  it('counts a write with RETURNING for write health, run at once or through Kysely', async () => {
    const file = join(dir, 'k.db');
    const health = new WriteHealth();
    db = await openDatabase({ file, health });
    const at = new Date().toISOString();
    await insertTask(db, { id: 't1', description: 'd', status: 'processing', created_at: at, updated_at: at });
    // saveFrame is an UPDATE ... RETURNING, compiled by its first call and then run straight on the driver (direct-reads.ts).
    expect(await saveFrame(db, 't1', { progress: 1 }, { small: true })).toBe(1);
    const pages = Number((await sql<{ page_count: number }>`pragma page_count`.execute(db)).rows[0]!.page_count);
    await sql.raw(`pragma max_page_count = ${pages + 2}`).execute(db);
    const big = 'x'.repeat(64 * 1024);
    await expect(saveFrame(db, 't1', { progress: 1 }, { big })).rejects.toMatchObject({ code: 'SQLITE_FULL' });
    expect(health.error).toMatch(/disk holding the database is full/);
    await sql.raw('pragma max_page_count = 1073741823').execute(db);
    expect(await saveFrame(db, 't1', { progress: 2 }, { small: true })).toBe(2);
    expect(health.ok).toBe(true);
    // The same through Kysely's executor (inside a transaction, where nothing runs directly).
    await sql.raw(`pragma max_page_count = ${pages + 2}`).execute(db);
    await expect(db.transaction().execute((trx) => saveFrame(trx, 't1', { progress: 3 }, { big }))).rejects.toMatchObject({ code: 'SQLITE_FULL' });
    expect(health.ok).toBe(false);
    await sql.raw('pragma max_page_count = 1073741823').execute(db);
    expect(await db.transaction().execute((trx) => saveFrame(trx, 't1', { progress: 4 }, { small: true }))).toBe(3);
    expect(health.ok).toBe(true);
    expect((await findTask(db, 't1'))?.progress).toBe(4);
  });
});

describe('kept statements', () => {
  it('returns the rows better-sqlite3 would: same keys in the same order, duplicates last-wins, every type', async () => {
    const file = join(dir, 'k.db');
    db = await openDatabase({ file });
    await sql`create table t (a integer, b text, c real, d blob, e text)`.execute(db);
    await sql`insert into t values (9007199254740991, 'x', 2.5, x'0102', null), (1, 'y', 0.5, null, 'z')`.execute(db);
    other = new BetterSqlite3(file, { readonly: true });
    for (const text of ['select * from t order by a', 'select a as b, b, e as "__x", 1 as a from t order by a', 'select t.*, u.b as b from t join t u on u.a = t.a']) {
      const expected = other.prepare(text).all();
      const got = (await sql.raw(text).execute(db)).rows;
      expect(got).toEqual(expected);
      expect(got.map((r) => Object.keys(r as object))).toEqual(expected.map((r) => Object.keys(r as object)));
      // The second run reuses the kept statement.
      expect((await sql.raw(text).execute(db)).rows).toEqual(expected);
    }
    // A column named __proto__ is left to better-sqlite3 (an object literal would set the prototype).
    const proto = (await sql.raw('select 1 as "__proto__", 2 as b').execute(db)).rows[0] as Record<string, unknown>;
    const expected = other.prepare('select 1 as "__proto__", 2 as b').get() as Record<string, unknown>;
    expect(Object.getOwnPropertyNames(proto)).toEqual(Object.getOwnPropertyNames(expected));
    expect(Object.getPrototypeOf(proto)).toBe(Object.getPrototypeOf(expected));
  });

  it('keeps at most statementCacheSize statements and forgets them after DDL; a column added by another connection shows', async () => {
    const file = join(dir, 'k.db');
    const sqlite = new BetterSqlite3(file);
    const cache = new StatementCache(sqlite, 3);
    sqlite.exec('create table t (a integer)');
    sqlite.exec('insert into t values (1)');
    for (let i = 0; i < 5; i++) expect(cache.get(`select a, ${i} as n from t`).all([])).toEqual([{ a: 1, n: i }]);
    expect(cache.size).toBe(3);
    const star = cache.get('select * from t');
    expect(star.all([])).toEqual([{ a: 1 }]);
    expect(cache.get('select * from t')).toBe(star);
    cache.get('alter table t add column b text').stmt.run();
    expect(cache.size).toBe(0);
    // Another process changes the schema: SQLite re-prepares the kept statement, the rows follow.
    const kept = cache.get('select * from t');
    other = new BetterSqlite3(file);
    other.exec("alter table t add column c text default 'c'");
    expect(kept.all([])).toEqual([{ a: 1, b: null, c: 'c' }]);
    sqlite.close();
  });

  it('a stream and a kept statement of the same SQL do not get in each other\'s way', async () => {
    db = await openDatabase({ file: join(dir, 'k.db') });
    for (let i = 0; i < 3; i++) await beat(db, `i${i}`, String(i));
    const query = db.selectFrom('heartbeats').select('instance').orderBy('instance');
    const seen: string[] = [];
    for await (const row of query.stream()) {
      // The same SQL run while the stream's statement is still stepping.
      expect(await query.execute()).toHaveLength(3);
      seen.push(row.instance);
    }
    expect(seen).toEqual(['i0', 'i1', 'i2']);
  });
});
