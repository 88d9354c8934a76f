/**
 * The worker pool over real ComfyUI simulators: a server excluded for a missing model comes back
 * once the model is installed, health reflects the last check, every change of a server's state is
 * logged once, and `beforeUp` gates the return of a server that was down. The pool also runs over
 * an in-memory `ComfyBackend`: it needs nothing of ComfyUI but that interface.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startSimulator, type Simulator, type SimulatorOptions } from '../simulator/server.js';
import { loadWorkflow } from '../src/comfyui/workflow.js';
import { createLogger } from '../src/log.js';
import { WorkerPool, type PoolMember, type WorkerPoolOptions } from '../src/tasks/worker-pool.js';
import { FakeBackend, objectInfoFor } from './helpers/fake-backend.js';
import { until } from './helpers/stack.js';

interface Line {
  level: string;
  msg: string;
  worker?: string;
  error?: string;
  [key: string]: unknown;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function sim(options: SimulatorOptions = {}): Promise<Simulator> {
  const s = await startSimulator({ port: 0, stepMs: 5, ...options });
  cleanups.push(() => s.close());
  return s;
}

/** A pool with test timings and a logger that keeps its lines. */
async function pool(urls: string[], options: Partial<WorkerPoolOptions> = {}): Promise<{ pool: WorkerPool; lines: Line[] }> {
  const lines: Line[] = [];
  const log = createLogger({ json: true, debug: true, write: (l) => lines.push(JSON.parse(l) as Line) });
  const p = new WorkerPool(urls, {
    workflow: await loadWorkflow(),
    healthIntervalMs: 100,
    failuresBeforeDown: 1,
    workflowRecheckMs: 300,
    log,
    ...options,
    worker: { timeoutMs: 500, pollMs: 200, silenceMs: 3000, socket: { reconnectInitialMs: 50, reconnectMaxMs: 200 }, ...options.worker },
  });
  cleanups.push(() => p.stop());
  await p.start();
  return { pool: p, lines };
}

function messages(lines: Line[], worker: string): string[] {
  return lines.filter((l) => l.worker === worker).map((l) => l.msg);
}

/** Resolves with the next `event` of the pool. */
function next(p: WorkerPool, event: 'up' | 'down'): Promise<PoolMember> {
  return new Promise((resolve) => p.once(event, resolve));
}

describe('a server excluded for a missing model', () => {
  it('is used once the model is installed (ComfyUI rescans its model folders), without restarting the pool', async () => {
    const s = await sim({ models: { diffusion_models: [] } });
    const { pool: p, lines } = await pool([s.url]);
    const m = p.members[0]!;
    expect(m).toMatchObject({ reachable: true, healthy: false, workflowOk: false });
    expect(m.lastError).toContain('flux1-dev-kontext_fp8_scaled.safetensors');

    // Several checks pass while it stays excluded: logged once.
    const checks = vi.spyOn(m.worker, 'health');
    await until('three more checks', () => checks.mock.calls.length >= 3);
    expect(m.healthy).toBe(false);

    const up = next(p, 'up');
    s.setModels({ diffusion_models: ['flux1-dev-kontext_fp8_scaled.safetensors'] });
    await up;
    expect(m).toMatchObject({ reachable: true, healthy: true, workflowOk: true, lastError: null });
    expect(messages(lines, s.url)).toEqual(['ComfyUI worker cannot run the workflow; excluded until it can', 'ComfyUI worker up']);
  });

  it('is used once ComfyUI restarts with the model: checked again when it comes back', async () => {
    const first = await startSimulator({ port: 0, stepMs: 5, models: { diffusion_models: [] } });
    // No periodic recheck in this test: only coming back may trigger one.
    const { pool: p, lines } = await pool([first.url], { workflowRecheckMs: 600_000 });
    const m = p.members[0]!;
    expect(m).toMatchObject({ reachable: true, healthy: false, workflowOk: false });

    const up = next(p, 'up');
    await first.close();
    await sim({ port: first.port });
    await up;
    expect(m).toMatchObject({ reachable: true, healthy: true, workflowOk: true, lastError: null });
    const logged = messages(lines, first.url);
    expect(logged[0]).toBe('ComfyUI worker cannot run the workflow; excluded until it can');
    expect(logged.at(-1)).toBe('ComfyUI worker up');
    expect(logged.filter((l) => l === 'ComfyUI worker up')).toHaveLength(1);
  });

  it('is excluded when a restart loses the model, and logged with the problem', async () => {
    const first = await startSimulator({ port: 0, stepMs: 5 });
    const { pool: p, lines } = await pool([first.url], { workflowRecheckMs: 600_000 });
    const m = p.members[0]!;
    expect(m.healthy).toBe(true);

    await first.close();
    await sim({ port: first.port, models: { vae: [] } });
    await until('excluded', () => m.reachable && m.workflowOk === false);
    expect(m.healthy).toBe(false);
    expect(m.lastError).toContain('ae.safetensors');
    expect(lines.filter((l) => l.msg.startsWith('ComfyUI worker cannot run')).map((l) => l.error)).toEqual([m.lastError]);
  });
});

describe('health reflects the last check', () => {
  it('shows a hung server unreachable after its first failed check, still in rotation until failuresBeforeDown', async () => {
    const s = await sim();
    const { pool: p, lines } = await pool([s.url], { failuresBeforeDown: 2, worker: { timeoutMs: 300 } });
    const m = p.members[0]!;
    expect(m).toMatchObject({ reachable: true, healthy: true });

    const down = next(p, 'down');
    s.pause();
    await until('the first failed check', () => m.failures >= 1);
    expect(m.reachable).toBe(false);
    expect(m.lastError).toMatch(/timed? ?out|timeout/i);
    await down;
    expect(m).toMatchObject({ reachable: false, healthy: false });

    const up = next(p, 'up');
    s.resume();
    await up;
    expect(m).toMatchObject({ reachable: true, healthy: true, lastError: null });
    expect(messages(lines, s.url)).toEqual([
      'ComfyUI worker up',
      'ComfyUI worker did not answer its health check; still in rotation',
      'ComfyUI worker down',
      'ComfyUI worker up',
    ]);
  });

  it('logs a server that is never reachable once, however many checks fail', async () => {
    const closed = await sim();
    const url = closed.url;
    await closed.close();
    const { pool: p, lines } = await pool([url]);
    const m = p.members[0]!;
    await until('four failed checks', () => m.failures >= 4);
    expect(m).toMatchObject({ reachable: false, healthy: false });
    expect(lines.filter((l) => l.worker === url)).toEqual([
      expect.objectContaining({ level: 'warn', msg: 'ComfyUI worker unreachable', error: m.lastError }),
    ]);
  });

  it('logs a server that answers garbage once, as unreachable', async () => {
    const garbage = http.createServer((_req, res) => res.end('<html>not ComfyUI</html>'));
    await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          garbage.closeAllConnections();
          garbage.close(() => resolve());
        }),
    );
    const url = `http://127.0.0.1:${(garbage.address() as AddressInfo).port}`;
    const { pool: p, lines } = await pool([url]);
    const m = p.members[0]!;
    await until('four failed checks', () => m.failures >= 4);
    expect(m).toMatchObject({ reachable: false, healthy: false });
    const logged = lines.filter((l) => l.worker === url);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 'warn', msg: 'ComfyUI worker unreachable' });
    expect(logged[0]!.error).toBeTruthy();
  });
});

describe('beforeUp', () => {
  it('keeps a server out of rotation until it succeeds, runs once at a time, and runs again after the server was down', async () => {
    const s = await sim();
    let calls = 0;
    let active = 0;
    let maxActive = 0;
    let release: (() => void) | undefined;
    const beforeUp = async (): Promise<void> => {
      calls++;
      active++;
      maxActive = Math.max(maxActive, active);
      try {
        if (calls === 1) return; // the first start goes straight through
        if (calls === 2) throw new Error('queue not cleaned');
        await new Promise<void>((resolve) => (release = resolve));
      } finally {
        active--;
      }
    };
    const { pool: p, lines } = await pool([s.url], { beforeUp });
    const m = p.members[0]!;
    expect(m.healthy).toBe(true);
    expect(calls).toBe(1);

    const down = next(p, 'down');
    s.pause();
    await down;
    s.resume();
    // Attempt 2 fails; attempt 3 hangs until released, while checks go on.
    await until('the third attempt', () => calls === 3);
    const checks = vi.spyOn(m.worker, 'health');
    await until('three checks during the attempt', () => checks.mock.calls.length >= 3);
    expect(m).toMatchObject({ reachable: true, healthy: false });
    expect(calls).toBe(3);

    const up = next(p, 'up');
    release?.();
    await up;
    expect(m).toMatchObject({ reachable: true, healthy: true, lastError: null });
    // In rotation, it is not prepared again by the checks that follow.
    const after = checks.mock.calls.length;
    await until('three checks in rotation', () => checks.mock.calls.length >= after + 3);
    expect(calls).toBe(3);
    expect(maxActive).toBe(1);
    expect(messages(lines, s.url)).toEqual([
      'ComfyUI worker reachable; preparing it before it gets work',
      'ComfyUI worker up',
      'ComfyUI worker down',
      'ComfyUI worker reachable; preparing it before it gets work',
      'ComfyUI worker not put back into rotation',
      'ComfyUI worker up',
    ]);
  });

  it('does not hold up start() when it hangs: the server stays out of rotation', async () => {
    const s = await sim();
    let calls = 0;
    const { pool: p } = await pool([s.url], {
      beforeUp: () => {
        calls++;
        return new Promise<void>(() => undefined);
      },
      worker: { timeoutMs: 300 },
    });
    const m = p.members[0]!;
    expect(m).toMatchObject({ reachable: true, healthy: false });
    expect(calls).toBe(1);
  });
});

describe('the pool over the ComfyBackend interface alone (an in-memory backend)', () => {
  /** A pool over fakes; checks come from liveness events only, unless a test sets an interval. */
  async function fakePool(names: string[], options: Partial<WorkerPoolOptions<FakeBackend>> = {}) {
    const workflow = await loadWorkflow();
    const fakes = new Map(names.map((url) => [url, new FakeBackend(url, objectInfoFor(workflow.prompt))]));
    const p = new WorkerPool<FakeBackend>(names, { workflow, healthIntervalMs: 3_600_000, backend: (url) => fakes.get(url)!, ...options });
    cleanups.push(() => p.stop());
    return { p, fakes: names.map((url) => fakes.get(url)!), workflow };
  }
  const nextOf = (p: WorkerPool<FakeBackend>, event: 'up' | 'down') => new Promise<PoolMember<FakeBackend>>((resolve) => p.once(event, resolve));

  it('puts answering servers in rotation, takes one out when its connection drops, and checks its workflow again when it is back', async () => {
    const { p, fakes } = await fakePool(['fake://a', 'fake://b']);
    const [a, b] = fakes as [FakeBackend, FakeBackend];
    await p.start();
    expect(p.members.map((m) => [m.url, m.healthy, m.device])).toEqual([
      ['fake://a', true, 'fake GPU'],
      ['fake://b', true, 'fake GPU'],
    ]);
    expect(a.calls.filter((c) => c === 'objectInfo')).toHaveLength(1);
    // The least busy server first: two acquisitions land on two servers.
    expect([p.acquire()?.url, p.acquire()?.url].sort()).toEqual(['fake://a', 'fake://b']);

    const down = nextOf(p, 'down');
    a.goDown();
    // One failed check with the connection lost is enough, whatever failuresBeforeDown says.
    expect((await down).url).toBe('fake://a');
    expect(p.acquire()?.url).toBe('fake://b');
    expect(p.freeSlots()).toBe(0);

    const up = nextOf(p, 'up');
    a.comeBack();
    expect((await up).url).toBe('fake://a');
    expect(a.calls.filter((c) => c === 'objectInfo')).toHaveLength(2);
    expect(b.calls.filter((c) => c === 'objectInfo')).toHaveLength(1);
  });

  it('keeps a server that cannot run the workflow out of rotation until its node classes can', async () => {
    const { p, fakes, workflow } = await fakePool(['fake://a'], { healthIntervalMs: 20, workflowRecheckMs: 0 });
    const a = fakes[0]!;
    const { SaveImage: _removed, ...withoutSaveImage } = objectInfoFor(workflow.prompt);
    a.offer(withoutSaveImage);
    await p.start();
    const m = p.members[0]!;
    expect(m).toMatchObject({ reachable: true, healthy: false, workflowOk: false });
    expect(m.lastError).toContain('node class SaveImage is not installed');
    expect(p.acquire()).toBeUndefined();

    const up = nextOf(p, 'up');
    a.offer(objectInfoFor(workflow.prompt));
    await up;
    expect(p.acquire()).toBe(m);
  });
});
