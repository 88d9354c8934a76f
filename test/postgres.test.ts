/**
 * What only PostgreSQL has to show: several replicas (separate handles, separate pools) claiming
 * from one queue, DATABASE_URL errors at start, lost connections reported to WriteHealth, and rows
 * and their order the same as SQLite's.
 */
import { once } from 'node:events';
import { createServer } from 'node:net';
import pg from 'pg';
import { expect, it } from 'vitest';
import { openDatabase } from '../src/db/database.js';
import { beat } from '../src/db/heartbeats.js';
import { countByStatus, findTask, insertTask, listTasks } from '../src/db/tasks.js';
import { isStorageUnavailable, WriteHealth } from '../src/db/write-health.js';
import { promptIdFor } from '../src/tasks/ids.js';
import { transitions } from '../src/tasks/transitions/index.js';
import { ADMIN_URL, createTestDatabase, forEachDialect } from './helpers/databases.js';
import { startProxy } from './helpers/tcp-proxy.js';

const createdAt = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

forEachDialect(
  'PostgreSQL',
  (ctx) => {
    it('two replicas claiming at once with maxProcessing 2 and 5 pending tasks start exactly the 2 oldest, each once', async () => {
      const a = ctx.db;
      const b = await ctx.database.open();
      for (let i = 0; i < 5; i++) {
        const id = `t${i}`;
        const at = createdAt(i);
        await transitions.enqueueTask(a, { id, description: id, status: 'pending', created_at: at, updated_at: at }, [
          { task_id: id, idx: 0, seed: i, prompt_id: promptIdFor(id, 0), status: 'pending' },
        ]);
      }
      // Each replica tries five claims at once: without the lock, several see one free place.
      const claim = (db: typeof a, instance: string) => transitions.claimTask(db, { instance, leaseUntil: createdAt(59), maxProcessing: 2 });
      const results = await Promise.all([0, 1, 2, 3, 4].flatMap(() => [claim(a, 'replica-a'), claim(b, 'replica-b')]));
      const won = results.filter((r) => r !== undefined).map((r) => r!.row.id);
      expect(won.sort()).toEqual(['t0', 't1']);
      expect(await countByStatus(a)).toMatchObject({ processing: 2, pending: 3 });
      for (const id of ['t0', 't1']) expect((await findTask(b, id))?.seq).toBe(2); // one processing frame each
    });

    it('two replicas taking over lapsed claims at once adopt each task once', async () => {
      const a = ctx.db;
      const b = await ctx.database.open();
      const ids = ['l0', 'l1', 'l2', 'l3'];
      for (const [i, id] of ids.entries()) {
        const at = createdAt(i);
        await transitions.enqueueTask(a, { id, description: id, status: 'pending', created_at: at, updated_at: at }, []);
        await transitions.claimTask(a, { instance: 'gone', leaseUntil: createdAt(30), maxProcessing: 10 }); // lapsed long ago
      }
      const lease = new Date(Date.now() + 60_000).toISOString();
      const [byA, byB] = await Promise.all([
        transitions.recoverTasks(a, { instance: 'replica-a', leaseUntil: lease }),
        transitions.recoverTasks(b, { instance: 'replica-b', leaseUntil: lease }),
      ]);
      const adopted = [...byA.map((t) => t.id), ...byB.map((t) => t.id)];
      expect(adopted.sort()).toEqual(ids);
      for (const t of byA) expect((await findTask(a, t.id))?.claimed_by).toBe('replica-a');
      for (const t of byB) expect((await findTask(a, t.id))?.claimed_by).toBe('replica-b');
    });

    it('two replicas starting together on an empty database both migrate it', async () => {
      const database = await createTestDatabase('postgres');
      try {
        const [a, b] = await Promise.all([database.open(), database.open()]);
        await beat(a, 'a', 'now');
        expect(await b.selectFrom('heartbeats').selectAll().execute()).toEqual([{ instance: 'a', at: 'now' }]);
      } finally {
        await database.drop();
      }
    });

    it('a connection the server ends (admin shutdown) is reported, and the next write on a new one heals it', async () => {
      const health = new WriteHealth({ probeIntervalMs: 50 });
      const db = await ctx.database.open({ health });
      health.setProbe(() => beat(db, 'probe', new Date().toISOString()));
      await beat(db, 'a', 'before'); // a connection is open and idle in the pool
      const changes: boolean[] = [];
      health.on('change', (ok) => changes.push(ok));
      const down = once(health, 'change');
      const admin = new pg.Client(ADMIN_URL);
      await admin.connect();
      try {
        const dbName = new URL((ctx.database.target as { url: string }).url).pathname.slice(1);
        const { rowCount } = await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name = 'kontext-gateway'`, [dbName]);
        expect(rowCount).toBeGreaterThan(0);
      } finally {
        await admin.end();
      }
      expect(await down).toEqual([false, expect.stringMatching(/cannot be reached \(57P01: terminating connection due to administrator command/)]);
      // The probe writes on a fresh connection.
      if (!health.ok) await once(health, 'change');
      expect(health.ok).toBe(true);
      expect(changes).toEqual([false, true]);
      expect(await db.selectFrom('heartbeats').select('instance').where('instance', '=', 'probe').execute()).toEqual([{ instance: 'probe' }]);
      health.stop();
    });

    it('a server that refuses connections makes writes fail as storage unavailable; they work again when it is back', async () => {
      const proxy = await startProxy(5432, new URL(ADMIN_URL).hostname);
      const url = new URL((ctx.database.target as { url: string }).url);
      url.port = String(proxy.port);
      const health = new WriteHealth({ probeIntervalMs: 50 });
      const db = await openDatabase({ url: url.toString(), health, connectTimeoutMs: 1000 });
      try {
        health.setProbe(() => beat(db, 'probe', new Date().toISOString()));
        await beat(db, 'a', 'before');
        await proxy.stop(); // refused from now on; open connections cut
        const err: unknown = await beat(db, 'a', 'during').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isStorageUnavailable(err)).toBe(true);
        expect(health.ok).toBe(false);
        expect(health.error).toMatch(/the database server cannot be reached/);
        const up = once(health, 'change');
        await proxy.restart();
        expect(await up).toEqual([true, null]);
        await beat(db, 'a', 'after');
        expect(await db.selectFrom('heartbeats').select('at').where('instance', '=', 'a').executeTakeFirst()).toEqual({ at: 'after' });
      } finally {
        health.stop();
        await db.destroy();
        await proxy.stop();
      }
    });
  },
  ['postgres'],
);

forEachDialect(
  'DATABASE_URL at start',
  () => {
    it('a bad scheme, a non-URL, a refused port and a missing database each stop the start with one line naming DATABASE_URL', async () => {
      const refused = await freePort();
      const cases: [string, RegExp][] = [
        ['mysql://root@127.0.0.1/db', /^DATABASE_URL: unsupported scheme "mysql"; expected postgres:\/\//],
        ['not a url secret', /^DATABASE_URL: not a URL; expected postgres:\/\//],
        [`postgres://me:hunter2@127.0.0.1:${refused}/db`, /^DATABASE_URL: cannot connect to postgres:\/\/me:\*\*\*@127\.0\.0\.1:\d+\/db: .*ECONNREFUSED/],
        [ADMIN_URL.replace(/\/test$/, '/kontext_no_such_db'), /^DATABASE_URL: cannot connect to .*: database "kontext_no_such_db" does not exist \(3D000\)$/],
      ];
      for (const [url, expected] of cases) {
        const err = (await openDatabase({ url, connectTimeoutMs: 2000 }).then(
          () => new Error('opened'),
          (e: unknown) => e,
        )) as Error;
        expect(err.message).toMatch(expected);
        expect(err.message).not.toMatch(/\n|hunter2|secret/);
      }
    });
  },
  ['postgres'],
);

// Rows written the same way read back equal on both dialects, and sort the same (bytewise text).
const tasksOn: Record<string, unknown> = {};
forEachDialect('the same rows on both dialects', (ctx) => {
  it('reads back the rows as written, in the same order', async () => {
    const ids = ['b', 'B', 'a-2', 'a_1', 'A', '0', 'é'];
    for (const id of ids) await insertTask(ctx.db, { id, description: id, status: 'pending', created_at: createdAt(1), updated_at: createdAt(1), base_seed: 2 ** 40, guidance: 2.75 });
    const rows = await listTasks(ctx.db, { limit: 100 });
    // SQLite's order is the reference; PostgreSQL's must match it.
    expect(rows.map((r) => r.id)).toEqual([...ids].sort((x, y) => Buffer.compare(Buffer.from(y), Buffer.from(x))));
    const other = tasksOn[ctx.dialect === 'sqlite' ? 'postgres' : 'sqlite'];
    tasksOn[ctx.dialect] = rows;
    if (other) expect(rows).toEqual(other);
  });
});

/** A port nothing listens on. */
async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as { port: number };
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
