/**
 * Three replicas as separate processes on one PostgreSQL, one Redis and one shared storage folder,
 * in front of one ComfyUI (issue 11): a task created on one replica and watched on another is run
 * by whichever claims it; SIGKILL that replica mid-task and another takes the task over when its
 * lease lapses; ComfyUI ran each prompt once, and every surviving replica serves the images.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findTask } from '../src/db/tasks.js';
import { promptIdFor } from '../src/tasks/ids.js';
import { createTestDatabase, postgresProblem, type TestDatabase } from './helpers/databases.js';
import { expectCompleteStream, watchWs, wsClient } from './helpers/graphql.js';
import { startServiceProcess, startSimulatorProcess, type Child } from './helpers/processes.js';
import { REDIS_URL, redisAvailable } from './helpers/redis.js';
import { postGenerate, taskStatus, until } from './helpers/stack.js';

const ready = (await redisAvailable('replica processes')) && !postgresProblem;
if (postgresProblem && process.env.CI) throw new Error(`replica processes: ${postgresProblem}`);

const children: Child[] = [];
let database: TestDatabase | undefined;
let dir: string | undefined;
afterAll(async () => {
  await Promise.all(children.map((c) => c.kill('SIGKILL').catch(() => undefined)));
  await database?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

(ready ? describe : describe.skip)('replica processes', () => {
  it('a replica SIGKILLed mid-task: another finishes the task, each prompt ran once, every replica serves the images', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kontext-replicas-'));
    database = await createTestDatabase('postgres');
    const url = (database.target as { url: string }).url;
    const sim = await startSimulatorProcess(['--port', '0', '--step-ms', '60', '--base-dir', join(dir, 'comfyui')]);
    children.push(sim);
    const shared = {
      DATABASE_URL: url,
      REDIS_URL,
      STORAGE_URL: `file://${join(dir, 'storage')}`,
      COMFYUI_URL: sim.url,
      TASK_LEASE_S: '5',
    };
    const replicas = new Map<string, Child>();
    for (const name of ['r1', 'r2', 'r3']) {
      const child = await startServiceProcess({ ...shared, INSTANCE_ID: name, DATA_DIR: join(dir, name) });
      children.push(child);
      replicas.set(name, child);
    }
    const r1 = replicas.get('r1')!;
    const res = await postGenerate(r1.url, { description: 'survive a replica', count: '3', steps: '10', size: '256x256' });
    expect(res.status).toBe(200);
    const id = ((await res.json()) as { task_id: string }).task_id;
    const db = await database.open();
    await until('a replica to claim it', async () => (await findTask(db, id))?.claimed_by != null);
    const runner = (await findTask(db, id))!.claimed_by!;
    const survivors = [...replicas].filter(([name]) => name !== runner).map(([, child]) => child);
    // Watched on a replica that does not run it: every frame comes over Redis.
    const client = wsClient(survivors[0]!.url);
    const watching = watchWs(client, id);
    await until('the first image', async () => (await taskStatus(survivors[1]!.url, id)).images.length >= 1);
    await replicas.get(runner)!.kill('SIGKILL');

    const frames = await watching;
    await client.dispose();
    // A frame the killed replica committed but had not yet published died with it (seq 15 then 17 seen
    // once on Node 24 in CI); the next frame, absolute, carries its state.
    expectCompleteStream(frames, id, 3, { gaps: true });
    const taker = (await findTask(db, id))!;
    expect(taker.status).toBe('completed');
    for (const survivor of survivors) {
      const body = await taskStatus(survivor.url, id);
      expect(body.status).toBe('completed');
      for (const image of body.images) expect((await fetch(image)).status).toBe(200);
    }
    // ComfyUI numbers every prompt it accepts: three entries numbered 0..2 mean three submissions in all.
    const history = (await (await fetch(`${sim.url}/history`)).json()) as Record<string, { prompt: [number]; status: { status_str: string } }>;
    expect(Object.keys(history).sort()).toEqual([0, 1, 2].map((i) => promptIdFor(id, i)).sort());
    expect(Object.values(history).map((e) => e.prompt[0]).sort()).toEqual([0, 1, 2]);

    // A cancel received by the survivor that does not run the next task stops it where it runs.
    const next = await postGenerate(survivors[0]!.url, { description: 'cancel me elsewhere', count: '2', steps: '60', size: '256x256' });
    const nextId = ((await next.json()) as { task_id: string }).task_id;
    await until('a survivor to claim it', async () => (await findTask(db, nextId))?.claimed_by != null);
    const holder = (await findTask(db, nextId))!.claimed_by!;
    const elsewhere = survivors.find((child) => child !== replicas.get(holder))!;
    const cancelled = await fetch(`${elsewhere.url}/api/task/${nextId}/cancel`, { method: 'POST' });
    expect(((await cancelled.json()) as { status: string }).status).toBe('cancelled');
    await until('ComfyUI idle', async () => {
      const q = (await (await fetch(`${sim.url}/queue`)).json()) as { queue_running: unknown[]; queue_pending: unknown[] };
      return q.queue_running.length === 0 && q.queue_pending.length === 0;
    }, 5_000);
  });
});
