/**
 * Replicas on PostgreSQL and Redis (issue 11), in one process for speed: a task created on one
 * replica and watched there is run by another; a cancel received by a replica that does not run
 * the task stops it where it runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type App } from '../src/app.js';
import { createTestDatabase, postgresProblem, type TestDatabase } from './helpers/databases.js';
import { expectCompleteStream, watchWs, wsClient } from './helpers/graphql.js';
import { REDIS_URL, redisAvailable } from './helpers/redis.js';
import { FAST, postGenerate, startStack, taskStatus, until, waitForStatus, type Stack } from './helpers/stack.js';

const ready = (await redisAvailable('replicas on PostgreSQL and Redis')) && !postgresProblem;
if (postgresProblem && process.env.CI) throw new Error(`replicas on PostgreSQL and Redis: ${postgresProblem}`);

(ready ? describe : describe.skip)('replicas on PostgreSQL and Redis', () => {
  let database: TestDatabase;
  let stack: Stack;
  /** Takes no task itself (MAX_CONCURRENT_TASKS 0): everything it is asked about runs on the other. */
  let front: App;
  let worker: App;
  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    const url = (database.target as { url: string }).url;
    stack = await startStack({ sim: { stepMs: 60 }, config: { databaseUrl: url, redisUrl: REDIS_URL, maxConcurrentTasks: 0 }, app: { ...FAST, instance: 'front' } });
    front = stack.app;
    worker = await startApp({ ...stack.config, port: 0, maxConcurrentTasks: 2 }, { ...FAST, instance: 'worker' });
  });
  afterAll(async () => {
    await worker?.close();
    await stack?.close();
    await database?.drop();
  });

  it('/health names the replica, its database and Redis', async () => {
    for (const [app, instance] of [[front, 'front'], [worker, 'worker']] as const) {
      const health = (await (await fetch(`${app.url}/health`)).json()) as Record<string, unknown>;
      expect(health).toMatchObject({ instance, database: { ok: true, writable: true, dialect: 'postgres' }, redis: { ok: true } });
    }
  });

  it('a task created and watched on one replica runs on another; every frame reaches the watcher, in order', async () => {
    const res = await postGenerate(front.url, { description: 'elsewhere', count: '2', steps: '6', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    const client = wsClient(front.url);
    try {
      const frames = await watchWs(client, id);
      expectCompleteStream(frames, id, 2);
      expect(frames.some((f) => f.step !== null)).toBe(true); // live steps came over Redis, not only snapshots
    } finally {
      await client.dispose();
    }
    const done = await taskStatus(front.url, id);
    expect(done.status).toBe('completed');
    // The task ran on the other replica; both serve its images (one DATA_DIR here, as a shared volume).
    for (const url of done.images) {
      expect((await fetch(url)).status).toBe(200);
      expect((await fetch(url.replace(front.url, worker.url))).status).toBe(200);
    }
  });

  it('a cancel received by the replica that does not run the task stops it where it runs, prompts leave ComfyUI', async () => {
    const res = await postGenerate(front.url, { description: 'stop it', count: '2', steps: '60', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await until('the task to sample on the other replica', async () => (await taskStatus(front.url, id)).progress > 0);
    expect(worker.engine.activeTaskIds()).toContain(id);
    const cancelled = await fetch(`${front.url}/api/task/${id}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(200);
    // The answer waits for the other replica to end it (at most 10 s).
    expect(((await cancelled.json()) as { status: string }).status).toBe('cancelled');
    await until('ComfyUI idle', async () => {
      const q = (await (await fetch(`${stack.sims[0]!.url}/queue`)).json()) as { queue_running: unknown[]; queue_pending: unknown[] };
      return q.queue_running.length === 0 && q.queue_pending.length === 0;
    }, 5_000);
    expect((await waitForStatus(worker.url, id, ['cancelled'])).status).toBe('cancelled');
  });
});
