/**
 * A take-over while the taking replica cannot reach Redis (PostgreSQL + Redis): the replica running a
 * task dies, and the one that adopts it has lost its Redis connection. Publishing the stored frame
 * and every later frame fails, but the work goes on: the task finishes from the database, each
 * prompt runs once, and a client watching on that replica gets the final frame once Redis is back
 * (the re-sync re-reads the task), in `seq` order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../src/app.js';
import { findTask } from '../src/db/tasks.js';
import { promptIdFor } from '../src/tasks/ids.js';
import { createTestDatabase, postgresProblem, type TestDatabase } from './helpers/databases.js';
import { WATCH, wsClient, type Frame } from './helpers/graphql.js';
import { REDIS_URL, redisAvailable } from './helpers/redis.js';
import { FAST, postGenerate, startStack, taskStatus, until, waitForStatus, type Stack } from './helpers/stack.js';
import { startProxy, type TcpProxy } from './helpers/tcp-proxy.js';

const ready = (await redisAvailable('take-over without Redis')) && !postgresProblem;
if (postgresProblem && process.env.CI) throw new Error(`take-over without Redis: ${postgresProblem}`);

(ready ? describe : describe.skip)('take-over without Redis', () => {
  let database: TestDatabase;
  let stack: Stack | undefined;
  let taker: App | undefined;
  let proxy: TcpProxy | undefined;
  beforeAll(async () => {
    database = await createTestDatabase('postgres');
  });
  afterAll(async () => {
    await taker?.close();
    await stack?.close();
    await proxy?.stop();
    await database?.drop();
  });

  it('the adopting replica finishes the task with Redis down, each prompt once; its watcher gets the final frame when Redis is back', async () => {
    const url = (database.target as { url: string }).url;
    stack = await startStack({ sim: { stepMs: 40 }, config: { databaseUrl: url, redisUrl: REDIS_URL, taskLeaseS: 5 }, app: { ...FAST, instance: 'replica-a' } });
    const dying = stack.app;
    const res = await postGenerate(dying.url, { description: 'no redis here', count: '3', steps: '10', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await until('the first image', async () => (await taskStatus(dying.url, id)).images.length >= 1);

    // The taker reaches Redis through a proxy the test can cut.
    const redis = new URL(REDIS_URL);
    proxy = await startProxy(Number(redis.port || 6379), redis.hostname);
    redis.port = String(proxy.port);
    taker = await startApp({ ...stack.config, port: 0, redisUrl: redis.toString() }, { ...FAST, instance: 'replica-b' });
    const client = wsClient(taker.url);
    const frames: Frame[] = [];
    const watched = new Promise<void>((resolve, reject) =>
      client.subscribe<{ taskProgress: Frame }>(
        { query: WATCH, variables: { taskId: id } },
        { next: (r) => (r.errors ? reject(new Error(JSON.stringify(r.errors))) : frames.push(r.data!.taskProgress)), error: reject, complete: resolve },
      ),
    );
    // The watch is subscribed (its snapshot came) before anything is cut.
    await until('the snapshot', () => frames.length > 0);

    await dying.engine.stop();
    await dying.pool.stop();
    await proxy.stop();
    const redisOk = async () => ((await (await fetch(`${taker!.url}/health`)).json()) as { redis: { ok: boolean } }).redis.ok;
    await until('the taker to see Redis gone', async () => !(await redisOk()), 10_000);
    await until('the taker to adopt the task', async () => (await findTask(taker!.db, id))?.claimed_by === 'replica-b', 20_000);
    const done = await waitForStatus(taker.url, id, ['completed', 'failed', 'cancelled'], 30_000);
    expect(done.status).toBe('completed');
    expect(done.images).toHaveLength(3);
    // All of it happened while Redis was out of reach.
    expect(await redisOk()).toBe(false);

    await proxy.restart();
    try {
      await watched;
      for (let i = 1; i < frames.length; i++) expect(frames[i]!.seq, `seq after ${frames[i - 1]!.seq}`).toBeGreaterThan(frames[i - 1]!.seq);
      expect(frames.filter((f) => f.status === 'COMPLETED')).toHaveLength(1);
      expect(frames.at(-1)).toMatchObject({ status: 'COMPLETED', progress: 100 });
    } finally {
      await client.dispose();
    }
    const history = (await (await fetch(`${stack.sims[0]!.url}/history`)).json()) as Record<string, { prompt: [number] }>;
    expect(Object.keys(history).sort()).toEqual([0, 1, 2].map((i) => promptIdFor(id, i)).sort());
    expect(Object.values(history).map((e) => e.prompt[0]).sort()).toEqual([0, 1, 2]);
  }, 60_000);
});
