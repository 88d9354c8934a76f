/**
 * Two replicas on one database: when the one running a task dies, the other takes the task over
 * once its claim lapses (TASK_LEASE_S), with the same reconciliation as a restart: each prompt runs once.
 */
import { afterEach, expect, it } from 'vitest';
import { startApp, type App } from '../src/app.js';
import { findTask } from '../src/db/tasks.js';
import { promptIdFor } from '../src/tasks/ids.js';
import { forEachDialect, serviceDatabase } from './helpers/databases.js';
import { FAST, postGenerate, startStack, taskStatus, until, waitForStatus, type Stack } from './helpers/stack.js';

let stack: Stack | undefined;
let other: App | undefined;
afterEach(async () => {
  await other?.close();
  other = undefined;
  await stack?.close();
  stack = undefined;
});

forEachDialect('take-over between replicas', (ctx) => {
  it('a replica that dies mid-task: another adopts the task when its lease lapses and finishes it, each prompt once', async () => {
    const database = serviceDatabase(ctx.database.target);
    stack = await startStack({ sim: { stepMs: 40 }, config: { taskLeaseS: 5, ...database }, app: { ...FAST, instance: 'replica-a' } });
    const a = stack.app;
    const res = await postGenerate(a.url, { description: 'outlive me', count: '3', steps: '10', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await until('the first image', async () => (await taskStatus(a.url, id)).images.length >= 1);
    // Replica B runs beside it on the same database and ComfyUI, and must not touch A's live claim.
    other = await startApp({ ...stack.config, port: 0 }, { ...FAST, instance: 'replica-b' });
    expect((await findTask(other.db, id))?.claimed_by).toBe('replica-a');
    // A dies: its claim stays in the database until the lease runs out (a stopped engine renews nothing).
    await a.engine.stop();
    await a.pool.stop();
    const lapsed = Date.parse((await findTask(other.db, id))!.lease_expires_at!);

    const done = await waitForStatus(other.url, id, ['completed', 'failed', 'cancelled'], 30_000);
    expect(done.status).toBe('completed');
    expect(done.images).toHaveLength(3);
    // Taken over only after the lease lapsed, not before.
    const row = (await findTask(other.db, id))!;
    expect(Date.parse(row.finished_at!)).toBeGreaterThanOrEqual(lapsed);
    for (const url of done.images) expect((await fetch(url)).status).toBe(200);
    // ComfyUI numbers every prompt it accepts: three entries numbered 0..2 mean three submissions in all.
    const history = (await (await fetch(`${stack.sims[0]!.url}/history`)).json()) as Record<string, { prompt: [number] }>;
    expect(Object.keys(history).sort()).toEqual([0, 1, 2].map((i) => promptIdFor(id, i)).sort());
    expect(Object.values(history).map((e) => e.prompt[0]).sort()).toEqual([0, 1, 2]);
  });

  it('a replica that lost its claim to another (it renewed too late) lets the task go and writes nothing more for it', async () => {
    const database = serviceDatabase(ctx.database.target);
    stack = await startStack({ sim: { stepMs: 60 }, config: { taskLeaseS: 5, ...database }, app: { ...FAST, instance: 'replica-a' } });
    const a = stack.app;
    const res = await postGenerate(a.url, { description: 'stolen', count: '2', steps: '30', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await until('the task to sample', async () => (await taskStatus(a.url, id)).progress > 0);
    // Another replica took it over, as if A's renewals had stalled past the lease.
    await a.db.updateTable('tasks').set({ claimed_by: 'replica-b' }).where('id', '=', id).execute();
    await until('replica A to let the task go', () => !a.engine.activeTaskIds().includes(id), 10_000);
    const seq = (await findTask(a.db, id))!.seq;
    // A's prompts stay on ComfyUI for the new holder (nothing cancelled), and A writes no more frames.
    const sim = stack.sims[0]!;
    const history = async () => (await (await fetch(`${sim.url}/history`)).json()) as Record<string, { status: { status_str: string } }>;
    await until('both prompts to finish on ComfyUI', async () => Object.keys(await history()).length === 2, 20_000);
    expect(Object.values(await history()).map((e) => e.status.status_str)).toEqual(['success', 'success']);
    const row = (await findTask(a.db, id))!;
    expect(row).toMatchObject({ status: 'processing', claimed_by: 'replica-b' });
    expect(row.seq).toBe(seq);
  });
});
