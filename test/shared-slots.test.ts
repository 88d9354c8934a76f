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
});
