/**
 * The ComfyUI simulator (simulator/) is a separate product: the service process must never load it
 * unless started with --demo, which imports it on demand. A loader hook preloaded through
 * NODE_OPTIONS (test/fixtures/refuse-simulator) refuses every module under simulator/ and prints
 * which; the second test shows that the hook does catch the simulator when it is loaded.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { closedPort } from './helpers/ports.js';
import { startServiceProcess } from './helpers/processes.js';
import { processScope } from './helpers/process-scope.js';
import { postGenerate, waitForStatus } from './helpers/stack.js';

const HOOK = new URL('./fixtures/refuse-simulator/register.mjs', import.meta.url).href;
const MARK = 'simulator module refused:';
/** NODE_OPTIONS that keep whatever the runner set and add the refusing hook. */
const REFUSE_SIMULATOR = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${HOOK}`.trim() };

const scope = processScope('kontext-isolation-');
const { track } = scope;

describe('the simulator stays out of the production entry', () => {
  it('npm start serves and shuts down without resolving any module under simulator/', async () => {
    const comfyUrl = `http://127.0.0.1:${await closedPort()}`;
    const service = await track(startServiceProcess({ DATA_DIR: join(scope.dir, 'data'), COMFYUI_URL: comfyUrl, ...REFUSE_SIMULATOR }));
    const health = (await (await fetch(`${service.url}/health`)).json()) as { status: string };
    expect(health.status).toBe('degraded'); // ComfyUI is down; the service runs anyway
    const exited = new Promise<number | null>((r) => service.process.once('exit', (code) => r(code)));
    service.process.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(service.output()).toContain('"msg":"stopped"');
    expect(service.output()).not.toContain(MARK);
  });

  it('the hook catches the simulator: with it, --demo fails naming simulator/server.ts', async () => {
    const start = startServiceProcess({ DATA_DIR: join(scope.dir, 'data'), ...REFUSE_SIMULATOR }, ['--demo']);
    await expect(start).rejects.toThrow(/exited with 1 before it was ready[\s\S]*simulator module refused: file:\S*\/simulator\/server\.ts/);
  });

  it('--demo imports the simulator on demand and completes a task on it', async () => {
    const service = await track(startServiceProcess({ DATA_DIR: join(scope.dir, 'data') }, ['--demo', '--demo-step-ms', '5']));
    expect(service.output()).toContain('"msg":"ComfyUI simulator started"');
    const res = await postGenerate(service.url, { description: 'demo', steps: '3', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    expect((await waitForStatus(service.url, id, ['completed', 'failed'], 30_000)).status).toBe('completed');
  });
});
