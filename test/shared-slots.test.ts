/**
 * Several replicas in front of one ComfyUI server share its slots: the next prompt waits in its
 * queue behind the running one, never more, whichever replica submitted them.
 */
import { afterEach, expect, it } from 'vitest';
import { startApp, type App } from '../src/app.js';
import { forEachDialect, serviceDatabase } from './helpers/databases.js';
import { FAST, postGenerate, startStack, waitForStatus, type Stack } from './helpers/stack.js';

let stack: Stack | undefined;
let other: App | undefined;
afterEach(async () => {
  await other?.close();
  other = undefined;
  await stack?.close();
  stack = undefined;
});

forEachDialect('GPU slots shared by replicas', (ctx) => {
  it('two replicas never give one server more than its 2 slots of prompts, and every task completes', async () => {
    const database = serviceDatabase(ctx.database.target);
    // Every status broadcast says how many prompts the server holds (running + waiting).
    let most = 0;
    const onMessageSent = (text: string) => {
      const m = JSON.parse(text) as { type: string; data?: { status?: { exec_info?: { queue_remaining?: number } } } };
      if (m.type === 'status') most = Math.max(most, m.data?.status?.exec_info?.queue_remaining ?? 0);
    };
    stack = await startStack({ sim: { stepMs: 15, onMessageSent }, config: { maxConcurrentTasks: 3, ...database }, app: { ...FAST, instance: 'replica-a' } });
    other = await startApp({ ...stack.config, port: 0 }, { ...FAST, instance: 'replica-b' });
    const apps = [stack.app, other];
    const ids: { app: App; id: string }[] = [];
    for (let i = 0; i < 6; i++) {
      const app = apps[i % 2]!;
      const res = await postGenerate(app.url, { description: `shared ${i}`, count: '2', steps: '6', size: '256x256' });
      ids.push({ app, id: ((await res.json()) as { task_id: string }).task_id });
    }
    for (const { app, id } of ids) expect((await waitForStatus(app.url, id, ['completed', 'failed', 'cancelled'], 60_000)).status).toBe('completed');
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(2);
  });

  it('two replicas start tasks in queue order, whichever replica received them and whichever claims them', async () => {
    const database = serviceDatabase(ctx.database.target);
    // Two tasks at a time in all (MAX_CONCURRENT_TASKS counts every replica's), one slot: both replicas
    // try to claim whenever a place frees (which one wins varies), and the claim lock makes the order
    // tasks start in the queue order.
    stack = await startStack({ sim: { stepMs: 15 }, config: { maxConcurrentTasks: 2, ...database }, app: { ...FAST, instance: 'replica-a', pool: { ...FAST.pool, slots: 1 } } });
    other = await startApp({ ...stack.config, port: 0 }, { ...FAST, instance: 'replica-b', pool: { ...FAST.pool, slots: 1 } });
    const apps = [stack.app, other];
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await postGenerate(apps[i % 2]!.url, { description: `ordered ${i}`, steps: '4', size: '256x256' });
      ids.push(((await res.json()) as { task_id: string }).task_id);
    }
    for (const id of ids) expect((await waitForStatus(stack.app.url, id, ['completed', 'failed', 'cancelled'], 60_000)).status).toBe('completed');
    const rows = await stack.app.db.selectFrom('tasks').select(['id', 'started_at']).where('id', 'in', ids).execute();
    const started = [...rows].sort((a, b) => (a.started_at! < b.started_at! ? -1 : a.started_at! > b.started_at! ? 1 : 0)).map((r) => r.id);
    expect(started).toEqual(ids);
  });
});
