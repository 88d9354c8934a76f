import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processScope } from './helpers/process-scope.js';
import { startServiceProcess, startSimulatorProcess } from './helpers/processes.js';
import { postGenerate, taskStatus, until, waitForStatus } from './helpers/stack.js';

const scope = processScope('kontext-crash-');
const { track } = scope;

interface HistoryEntry {
  prompt: [number, string, ...unknown[]];
  status: { status_str: string };
}
async function history(url: string): Promise<Record<string, HistoryEntry>> {
  return (await (await fetch(`${url}/history`)).json()) as Record<string, HistoryEntry>;
}

describe('crash recovery', () => {
  it('a service killed with SIGKILL mid-task finishes it after restart, and ComfyUI got each prompt exactly once', async () => {
    const sim = await track(startSimulatorProcess(['--port', '0', '--step-ms', '40', '--base-dir', join(scope.dir, 'comfyui')]));
    const env = { DATA_DIR: join(scope.dir, 'data'), COMFYUI_URL: sim.url };
    const first = await track(startServiceProcess(env));
    const res = await postGenerate(first.url, { description: 'crash me', count: '4', steps: '10', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await until('the first image', async () => (await taskStatus(first.url, id)).images.length >= 1);
    await first.kill('SIGKILL');

    const second = await track(startServiceProcess(env));
    const done = await waitForStatus(second.url, id, ['completed', 'failed'], 30_000);
    expect(done.status).toBe('completed');
    expect(done.images).toHaveLength(4);
    for (const url of done.images) expect((await fetch(url)).status).toBe(200);

    // ComfyUI's prompt counter advances on every POST /prompt: four entries numbered 0..3 mean four posts in all.
    const entries = Object.values(await history(sim.url));
    expect(entries).toHaveLength(4);
    expect(entries.map((e) => e.prompt[0]).sort()).toEqual([0, 1, 2, 3]);
    expect(entries.every((e) => e.status.status_str === 'success')).toBe(true);
  });

  it('a ComfyUI killed and restarted mid-task: the task still completes', async () => {
    const comfyDir = join(scope.dir, 'comfyui');
    let sim = await track(startSimulatorProcess(['--port', '0', '--step-ms', '40', '--base-dir', comfyDir]));
    const port = new URL(sim.url).port;
    const service = await track(startServiceProcess({ DATA_DIR: join(scope.dir, 'data'), COMFYUI_URL: sim.url }));
    const res = await postGenerate(service.url, { description: 'survive', count: '3', steps: '10', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await until('the first image', async () => (await taskStatus(service.url, id)).images.length >= 1);
    await sim.kill('SIGKILL');
    sim = await track(startSimulatorProcess(['--port', port, '--step-ms', '40', '--base-dir', comfyDir]));
    const done = await waitForStatus(service.url, id, ['completed', 'failed'], 40_000);
    expect(done.status).toBe('completed');
    expect(done.images).toHaveLength(3);
  });

  it('three workers, one killed mid-task: the task completes on the other two', async () => {
    const sims = await Promise.all([0, 1, 2].map((i) => track(startSimulatorProcess(['--port', '0', '--step-ms', '60', '--base-dir', join(scope.dir, `c${i}`)]))));
    const service = await track(startServiceProcess({ DATA_DIR: join(scope.dir, 'data'), COMFYUI_URL: sims.map((s) => s.url).join(',') }));
    const res = await postGenerate(service.url, { description: 'spread', count: '4', steps: '12', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await until('work on every worker', async () => {
      const running = await Promise.all(sims.map(async (s) => ((await (await fetch(`${s.url}/queue`)).json()) as { queue_running: unknown[] }).queue_running.length));
      return running.every((n) => n === 1);
    });
    await sims[1]!.kill('SIGKILL');
    const done = await waitForStatus(service.url, id, ['completed', 'failed'], 40_000);
    expect(done.status).toBe('completed');
    expect(done.images).toHaveLength(4);
    const survivors = [sims[0]!, sims[2]!];
    const ran = (await Promise.all(survivors.map((s) => history(s.url)))).flatMap((h) => Object.values(h)).filter((e) => e.status.status_str === 'success');
    expect(ran.length).toBe(4);
  });
});
