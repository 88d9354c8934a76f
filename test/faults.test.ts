/**
 * The promise "nothing lost, nothing run twice, never down" under faults: a database locked by
 * another process, a full disk, requests during start-up, a ComfyUI server that hangs and comes back.
 */
import { mkdtemp, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp, type App } from '../src/app.js';
import { loadWorkflow } from '../src/comfyui/workflow.js';
import { startSimulator, type Simulator } from '../simulator/server.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { imagesOfTask, insertImages } from '../src/db/images.js';
import { findTask, insertTask } from '../src/db/tasks.js';
import { TaskEngine } from '../src/tasks/engine.js';
import { subscribe } from '../src/tasks/events.js';
import { promptIdFor } from '../src/tasks/ids.js';
import { createMemoryProgressBus } from '../src/tasks/progress-bus.js';
import { transitions, type Transitions } from '../src/tasks/transitions/index.js';
import { WorkerPool } from '../src/tasks/worker-pool.js';
import type { Logger } from '../src/log.js';
import { pngOfSize } from './helpers/images.js';
import { emptyDisk, fillDisk, smallDisk as mountSmallDisk } from './helpers/small-disk.js';
import { closedPort } from './helpers/ports.js';
import { tryUpgrade } from './helpers/upgrade.js';
import { FAST, postGenerate, startStack, taskStatus, until, waitForStatus, type Stack } from './helpers/stack.js';

let stack: Stack | undefined;
const cleanups: (() => Promise<unknown> | void)[] = [];

/** A 24 MB disk of its own, unmounted after the test. */
async function smallDisk(): Promise<string> {
  const disk = await mountSmallDisk();
  cleanups.push(disk.dispose);
  return disk.path;
}

afterEach(async () => {
  await stack?.close();
  stack = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface HistoryEntry {
  status: { status_str: string };
}
async function history(sim: Simulator): Promise<Record<string, HistoryEntry>> {
  return (await (await fetch(`${sim.url}/history`)).json()) as Record<string, HistoryEntry>;
}
async function queue(sim: Simulator): Promise<{ queue_running: unknown[][]; queue_pending: unknown[][] }> {
  return (await (await fetch(`${sim.url}/queue`)).json()) as { queue_running: unknown[][]; queue_pending: unknown[][] };
}
async function successes(sims: Simulator[], promptIds: string[]): Promise<number> {
  let n = 0;
  for (const sim of sims) {
    const h = await history(sim);
    for (const id of promptIds) if (h[id]?.status.status_str === 'success') n++;
  }
  return n;
}
async function ready(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}/ready`);
  return { status: res.status, body: await res.json() };
}

describe('a database that cannot be written', () => {
  it('locked by another process: the service keeps answering, /ready says 503, and the task completes once the lock is gone', async () => {
    stack = await startStack({ sim: { stepMs: 40 }, app: { ...FAST, busyTimeoutMs: 300, writeProbeMs: 100 } });
    const { app } = stack;
    const res = await postGenerate(app.url, { description: 'locked out', count: '2', steps: '10', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await until('the task to sample', async () => (await taskStatus(app.url, id)).progress > 0);

    // The CLI, a backup or sqlite3 in a terminal takes the write lock for longer than a write waits.
    const other = new BetterSqlite3(join(stack.config.dataDir, 'kontext.db'));
    cleanups.push(() => void other.close());
    other.prepare('begin immediate').run();
    await until('/ready to report the database', async () => (await ready(app.url)).status === 503);
    expect(((await ready(app.url)).body as { detail: string }).detail).toMatch(/database.*locked/);
    // The event loop stays free: a route that needs no write answers while the lock is held.
    expect((await fetch(`${app.url}/openapi.json`)).status).toBe(200);
    expect(app.writeHealth.ok).toBe(false);
    other.prepare('commit').run();

    const done = await waitForStatus(app.url, id, ['completed', 'failed', 'cancelled'], 30_000);
    expect(done.status).toBe('completed');
    expect(done.images).toHaveLength(2);
    await until('/ready to recover', async () => (await ready(app.url)).status === 200);
    expect(await successes(stack.sims, [promptIdFor(id, 0), promptIdFor(id, 1)])).toBe(2);
  });

  it('a full disk: the process lives, /ready says 503, and when space comes back the work finishes without running twice', async () => {
    const mnt = await smallDisk();
    stack = await startStack({ sim: { stepMs: 100 }, config: { dataDir: join(mnt, 'data') }, app: { ...FAST, writeProbeMs: 100 } });
    const { app } = stack;
    // Two images of 2 s each: the task is still writing frames while the disk is full.
    const res = await postGenerate(app.url, { description: 'no room', count: '2', steps: '20', size: '512x512' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await until('the task to sample', async () => (await taskStatus(app.url, id)).progress > 0);

    await fillDisk(mnt);

    // SQLite may still succeed (it reuses pages of its write-ahead log); /ready asks the file system.
    const now = await ready(app.url);
    expect(now.status).toBe(503);
    expect((now.body as { detail: string }).detail).toMatch(/full/);
    expect((await fetch(`${app.url}/health`)).status).toBeLessThan(600); // still answering
    // A new upload has nowhere to go: a clear 503, not a 500.
    const refused = await postGenerate(app.url, { description: 'no room either' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/cannot store data right now: .*full/);
    await emptyDisk(mnt);

    const done = await waitForStatus(app.url, id, ['completed', 'failed', 'cancelled'], 30_000);
    expect(done.status).toBe('completed');
    expect(done.images).toHaveLength(2);
    for (const url of done.images) expect((await fetch(url)).status).toBe(200);
    await until('/ready to recover', async () => (await ready(app.url)).status === 200);
    expect(await successes(stack.sims, [promptIdFor(id, 0), promptIdFor(id, 1)])).toBe(2);
  }, 60_000);

  it('a disk that fills during an upload: 503 naming the full disk, nothing of the upload left, and the same upload taken once there is room', async () => {
    const mnt = await smallDisk();
    const dataDir = join(mnt, 'data');
    stack = await startStack({ config: { dataDir }, app: { ...FAST, writeProbeMs: 100 } });
    const { app } = stack;
    const free = async () => {
      const s = await statfs(mnt);
      return s.bavail * s.bsize;
    };
    // 4 MiB left: more than the 1 MiB below which /ready calls the disk full, less than the upload.
    await writeFile(join(mnt, 'filler'), Buffer.alloc((await free()) - 4 * 1024 * 1024));
    const before = await free();
    const big = await pngOfSize(8 * 1024 * 1024);
    const refused = await postGenerate(app.url, { description: 'more than the room', size: '256x256', steps: '2' }, big);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    // ENOSPC: the write of the upload itself ran out of room (no route checks free space first).
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/cannot store data right now: .*full \(ENOSPC/);
    // The partial file is gone: its space is free again and no upload or task was recorded.
    expect(await free()).toBeGreaterThanOrEqual(before - 64 * 1024);
    const files = async (sub: string) => (await readdir(join(dataDir, sub), { recursive: true, withFileTypes: true }).catch(() => [])).filter((f) => f.isFile());
    expect(await files('uploads')).toEqual([]);
    expect(await files('tmp')).toEqual([]);
    expect(await app.db.selectFrom('tasks').select('id').execute()).toEqual([]);
    expect((await fetch(`${app.url}/health`)).status).toBeLessThan(600); // the process lives

    await rm(join(mnt, 'filler'));
    const taken = await postGenerate(app.url, { description: 'now it fits', size: '256x256', steps: '2' }, big);
    expect(taken.status).toBe(200);
    const id = ((await taken.json()) as { task_id: string }).task_id;
    expect((await waitForStatus(app.url, id, ['completed', 'failed', 'cancelled'], 30_000)).status).toBe('completed');
  }, 60_000);
});

describe('start-up', () => {
  it('refuses requests until recovery has run (503 with Retry-After), answers /health meanwhile, then takes them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kontext-start-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const sim = await startSimulator({ port: 0, stepMs: 10, baseDir: join(dir, 'comfyui') });
    cleanups.push(() => sim.close());
    const port = await closedPort();
    const config = { ...loadConfig({}), host: '127.0.0.1', port, dataDir: join(dir, 'data'), comfyuiUrls: [sim.url] };
    // A hung ComfyUI holds the start-up (its first check) long enough to knock on the door meanwhile.
    sim.pause();
    const starting = startApp(config, { ...FAST, pool: { ...FAST.pool, worker: { timeoutMs: 1500 } } });
    const url = `http://127.0.0.1:${port}`;
    let early: Response | undefined;
    await until('the port to listen', async () => {
      early = await postGenerate(url, { description: 'too early' }).catch(() => undefined);
      return early !== undefined;
    });
    expect(early!.status).toBe(503);
    expect(early!.headers.get('retry-after')).toBe('1');
    expect(((await early!.json()) as { detail: string }).detail).toMatch(/starting/);
    expect((await fetch(`${url}/ready`)).status).toBe(503);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    // graphql-ws too: a mutation over a socket would otherwise reach the engine before its recovery.
    expect(await tryUpgrade(url)).toMatchObject({ status: 503 });
    sim.resume();
    const app: App = await starting;
    cleanups.push(() => app.close());
    const res = await postGenerate(url, { description: 'in time', count: '2', steps: '3', size: '256x256' });
    expect(res.status).toBe(200);
    const id = ((await res.json()) as { task_id: string }).task_id;
    expect((await waitForStatus(url, id, ['completed', 'failed'])).status).toBe('completed');
    expect(Object.keys(await history(sim))).toHaveLength(2);
  });

  it('the engine schedules nothing before its recovery has run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kontext-wake-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const db = await openDatabase({ file: join(dir, 'k.db') });
    cleanups.push(() => db.destroy());
    const workflow = await loadWorkflow(undefined);
    const pool = new WorkerPool([`http://127.0.0.1:${await closedPort()}`], { workflow });
    const engine = new TaskEngine({ db, pool, bus: createMemoryProgressBus(), workflow, dataDir: dir, tickMs: 20 });
    cleanups.push(() => engine.stop());
    const at = new Date().toISOString();
    await insertTask(db, {
      id: 't1', description: 'early', status: 'pending', progress: 0, result_path: null, error_message: null, created_at: at, updated_at: at,
      count: 1, size: 'auto', steps: 4, guidance: 2.5, base_seed: 1, workflow: workflow.name, upload_sha256: null, idempotency_key: null, params_hash: 'x',
    });
    await insertImages(db, [{ task_id: 't1', idx: 0, seed: 1, prompt_id: promptIdFor('t1', 0), status: 'pending' }]);
    // A request during start-up wakes the engine (TaskService.createTask does).
    engine.wake();
    await new Promise((r) => setTimeout(r, 300)); // many scheduling passes' worth
    expect((await findTask(db, 't1'))?.status).toBe('pending');
    await engine.start();
    await until('the task to be claimed after recovery', async () => (await findTask(db, 't1'))?.status === 'processing');
  });
});

describe('a ComfyUI server that hangs and comes back', () => {
  const hangOptions = {
    ...FAST,
    pool: { ...FAST.pool, worker: { ...FAST.pool!.worker, timeoutMs: 1000, socket: { pingIntervalMs: 500 } } },
  };

  it('its images move to another server, and when it wakes it runs none of them again', async () => {
    stack = await startStack({ workers: 2, sim: { stepMs: 100 }, app: hangOptions });
    const [a, b] = stack.sims as [Simulator, Simulator];
    const { app } = stack;
    const res = await postGenerate(app.url, { description: 'hang on', count: '4', steps: '10', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    const ids = [0, 1, 2, 3].map((i) => promptIdFor(id, i));
    await until('server A to run one of the prompts and hold another', async () => {
      const q = await queue(a);
      return q.queue_running.length === 1 && q.queue_pending.length >= 1;
    });
    a.pause();
    const done = await waitForStatus(app.url, id, ['completed', 'failed', 'cancelled'], 40_000);
    expect(done.status).toBe('completed');
    expect(done.images).toHaveLength(4);

    a.resume();
    await until('server A back in rotation', () => app.pool.members.find((m) => m.url === a.url)?.healthy === true, 20_000);
    await until('server A idle', async () => {
      const q = await queue(a);
      return q.queue_running.length === 0 && q.queue_pending.length === 0;
    });
    // Each image was made once in all: A's running prompt was interrupted, its waiting one deleted.
    expect(await successes([a, b], ids)).toBe(4);
    const onA = await history(a);
    for (const pid of ids) if (onA[pid]) expect(['success', 'error']).toContain(onA[pid]!.status.status_str);
  });

  it('a task cancelled while its server hung leaves nothing queued there when it wakes', async () => {
    stack = await startStack({ workers: 1, sim: { stepMs: 100 }, app: hangOptions });
    const [a] = stack.sims as [Simulator];
    const { app } = stack;
    const res = await postGenerate(app.url, { description: 'never mind', count: '2', steps: '10', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;
    await until('both prompts on the server', async () => {
      const q = await queue(a);
      return q.queue_running.length === 1 && q.queue_pending.length === 1;
    });
    a.pause();
    await until('the server to be out of rotation', () => app.pool.members[0]?.healthy === false, 20_000);
    expect((await fetch(`${app.url}/api/task/${id}/cancel`, { method: 'POST' })).status).toBe(200);
    expect((await taskStatus(app.url, id)).status).toBe('cancelled');
    a.resume();
    await until('the server back in rotation', () => app.pool.members[0]?.healthy === true, 20_000);
    await until('the server idle', async () => {
      const q = await queue(a);
      return q.queue_running.length === 0 && q.queue_pending.length === 0;
    });
    expect(await successes([a], [promptIdFor(id, 0), promptIdFor(id, 1)])).toBe(0);
  });
});

describe('a database write that fails in the middle of a task', () => {
  /** Log lines, to show that each failure is reported. */
  function capturingLogger(): { log: Logger; lines: { level: string; message: string; fields: Record<string, unknown> }[] } {
    const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
    const at = (level: string) => (message: string, fields: Record<string, unknown> = {}) => void lines.push({ level, message, fields });
    return { lines, log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
  }

  /** Fails the run if any promise rejects unhandled meanwhile (Node would stop the process on one). */
  function watchUnhandledRejections(): unknown[] {
    const reasons: unknown[] = [];
    const listener = (reason: unknown) => void reasons.push(reason);
    process.on('unhandledRejection', listener);
    cleanups.push(() => void process.off('unhandledRejection', listener));
    return reasons;
  }

  /** Each image's prompt was posted to ComfyUI once in all: the simulator numbers every prompt it accepts. */
  async function expectEachPromptRanOnce(sim: Simulator, taskId: string, count: number): Promise<void> {
    const h = (await (await fetch(`${sim.url}/history`)).json()) as Record<string, HistoryEntry & { prompt: [number, string] }>;
    const ids = Array.from({ length: count }, (_, i) => promptIdFor(taskId, i));
    expect(Object.keys(h).sort()).toEqual([...ids].sort());
    for (const id of ids) expect(h[id]!.status.status_str).toBe('success');
    expect(Object.values(h).map((e) => e.prompt[0]).sort()).toEqual(Array.from({ length: count }, (_, i) => i));
  }

  it('a full disk while an image is recorded (SQLITE_FULL): logged, retried, the task completes and nothing runs twice', async () => {
    const unhandled = watchUnhandledRejections();
    const { log, lines } = capturingLogger();
    let calls = 0;
    const failing: Transitions = {
      ...transitions,
      completeImage: async (...args) => {
        if (++calls === 1) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
        return transitions.completeImage(...args);
      },
    };
    stack = await startStack({ sim: { stepMs: 20 }, app: { ...FAST, log, engine: { ...FAST.engine, transitions: failing } } });
    const { app } = stack;
    const ready: number[] = [];
    subscribe(app.engine.events, 'image.ready', (e) => void ready.push(e.index));
    const res = await postGenerate(app.url, { description: 'full once', count: '2', steps: '4', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;

    const done = await waitForStatus(app.url, id, ['completed', 'failed', 'cancelled']);
    expect(done).toMatchObject({ status: 'completed', progress: 100, error_message: null });
    expect(done.images).toHaveLength(2);
    for (const url of done.images) expect((await fetch(url)).status).toBe(200);
    expect(calls).toBe(3); // two images, one of them recorded on the second try
    expect(ready.sort()).toEqual([0, 1]); // announced once each
    const retried = lines.filter((l) => l.level === 'warn' && l.message.includes(`of task ${id} failed; trying again`));
    expect(retried).toHaveLength(1);
    expect(String(retried[0]!.fields.error)).toMatch(/full.*SQLITE_FULL/);
    await expectEachPromptRanOnce(stack.sims[0]!, id, 2);
    expect(unhandled).toEqual([]);
  });

  it('a failed progress write and a failed "image started" write: logged, skipped, the task completes', async () => {
    const unhandled = watchUnhandledRejections();
    const { log, lines } = capturingLogger();
    const calls = { recordProgress: 0, startImage: 0 };
    const failing: Transitions = {
      ...transitions,
      recordProgress: async (...args) => {
        if (++calls.recordProgress === 2) throw new Error('progress write lost');
        return transitions.recordProgress(...args);
      },
      startImage: async (...args) => {
        if (++calls.startImage === 1) throw new Error('start write lost');
        return transitions.startImage(...args);
      },
    };
    stack = await startStack({ sim: { stepMs: 20 }, app: { ...FAST, log, engine: { ...FAST.engine, transitions: failing } } });
    const { app } = stack;
    const res = await postGenerate(app.url, { description: 'lossy frames', count: '2', steps: '6', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;

    const done = await waitForStatus(app.url, id, ['completed', 'failed', 'cancelled']);
    expect(done).toMatchObject({ status: 'completed', progress: 100 });
    expect(done.images).toHaveLength(2);
    expect(calls.recordProgress).toBeGreaterThan(2); // later frames were written after the lost one
    expect(calls.startImage).toBe(2);
    expect(lines.filter((l) => l.message === 'progress frame not written' && String(l.fields.error).includes('progress write lost'))).toHaveLength(1);
    expect(lines.filter((l) => l.message === 'could not record that an image started' && String(l.fields.error).includes('start write lost'))).toHaveLength(1);
    await expectEachPromptRanOnce(stack.sims[0]!, id, 2);
    expect(unhandled).toEqual([]);
  });

  it('an error that is not storage while an image is recorded: the task fails with it, on the task and the image', async () => {
    const unhandled = watchUnhandledRejections();
    let calls = 0;
    const failing: Transitions = {
      ...transitions,
      completeImage: async (...args) => {
        if (++calls === 1) throw new Error('constraint broken');
        return transitions.completeImage(...args);
      },
    };
    stack = await startStack({ sim: { stepMs: 20 }, app: { ...FAST, engine: { ...FAST.engine, transitions: failing } } });
    const { app } = stack;
    const finished: string[] = [];
    subscribe(app.engine.events, 'task.finished', (e) => void finished.push(`${e.status}: ${e.error}`));
    const res = await postGenerate(app.url, { description: 'broken', count: '1', steps: '4', size: '256x256' });
    const id = ((await res.json()) as { task_id: string }).task_id;

    const done = await waitForStatus(app.url, id, ['completed', 'failed', 'cancelled']);
    expect(done).toMatchObject({ status: 'failed', error_message: 'image 0: constraint broken' });
    // The event follows the commit that REST already reads.
    await until('task.finished', () => finished.length > 0);
    expect(finished).toEqual(['failed: image 0: constraint broken']);
    expect(await imagesOfTask(app.db, id)).toMatchObject([{ status: 'failed', error: 'image 0: constraint broken' }]);
    // The service carries on: the next task completes.
    const next = ((await (await postGenerate(app.url, { description: 'after', count: '1', steps: '2', size: '256x256' })).json()) as { task_id: string }).task_id;
    expect((await waitForStatus(app.url, next, ['completed', 'failed', 'cancelled'])).status).toBe('completed');
    expect(unhandled).toEqual([]);
  });
});
