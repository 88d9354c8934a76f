import { OPEN_CALLER } from '../src/auth/caller.js';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from 'kysely';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/database.js';
import { imagesOfTask } from '../src/db/images.js';
import { countByStatus } from '../src/db/tasks.js';
import type { ProgressFrame } from '../src/tasks/progress-frame.js';
import { WATCHERS_PER_TURN } from '../src/tasks/task-watch-hub.js';
import { transitions, type Transitions } from '../src/tasks/transitions/index.js';
import { makeImage } from './helpers/images.js';
import { FAST, postGenerate, startStack, taskStatus, until, waitForStatus, type Stack } from './helpers/stack.js';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function collect(it: AsyncGenerator<ProgressFrame> | undefined): Promise<ProgressFrame[]> {
  const frames: ProgressFrame[] = [];
  if (!it) throw new Error('no such task');
  for await (const f of it) frames.push(f);
  return frames;
}

describe('the task engine', () => {
  it('runs a 2-image task to completion, each image its own seed, at the requested size', async () => {
    stack = await startStack();
    const res = await postGenerate(stack.app.url, { description: 'make it night, keep the car', count: '2', size: '512x384', steps: '6', seed: '41' });
    expect(res.status).toBe(200);
    const created = (await res.json()) as { task_id: string; status: string };
    expect(created.status).toBe('pending');
    const watching = collect(await stack.app.service.watch(created.task_id, OPEN_CALLER));
    const done = await waitForStatus(stack.app.url, created.task_id, ['completed', 'failed']);
    expect(done).toMatchObject({ status: 'completed', progress: 100, error_message: null });
    expect(done.images).toHaveLength(2);
    expect(done.result_path).toHaveLength(2);
    const bodies = await Promise.all(
      done.images.map(async (url) => {
        const r = await fetch(url);
        expect(r.status).toBe(200);
        expect(r.headers.get('content-type')).toBe('image/png');
        return Buffer.from(await r.arrayBuffer());
      }),
    );
    for (const b of bodies) expect(await sharp(b).metadata()).toMatchObject({ format: 'png', width: 512, height: 384 });
    expect(bodies[0]!.equals(bodies[1]!)).toBe(false);
    const images = await imagesOfTask(stack.app.db, created.task_id);
    expect(images.map((i) => i.seed)).toEqual([41, 42]);

    const frames = await watching;
    const seqs = frames.map((f) => f.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (let i = 1; i < frames.length; i++) expect(frames[i]!.progress).toBeGreaterThanOrEqual(frames[i - 1]!.progress);
    expect(frames.at(-1)).toMatchObject({ status: 'completed', progress: 100 });
    expect(frames.filter((f) => f.image).map((f) => f.image!.index).sort()).toEqual([0, 1]);
    // With the first image done the task is half done, plus the second image's sampling so far
    // (it may already run while the first is downloaded), and not more.
    const firstDone = frames.find((f) => f.image)!;
    const second = frames.slice(0, frames.indexOf(firstDone)).filter((f) => f.imageIndex === 1 && f.step !== null).at(-1);
    const secondFraction = second ? second.step! / second.totalSteps! : 0;
    expect(firstDone.progress).toBeGreaterThanOrEqual(50);
    expect(firstDone.progress).toBeLessThanOrEqual(Math.floor((100 * (1 + secondFraction)) / 2));
    // Prompts are submitted in queue order, so the images finish in theirs.
    expect(frames.filter((f) => f.image).map((f) => f.image!.index)).toEqual([0, 1]);
    expect(frames.some((f) => f.step === 6 && f.totalSteps === 6)).toBe(true);
  });

  it('never has more than MAX_CONCURRENT_TASKS processing and tells the others their place in the queue', async () => {
    stack = await startStack({ config: { maxConcurrentTasks: 1 } });
    // Every move to processing records, in the same transaction, how many tasks then process:
    // exact, where sampling the count would miss a short overshoot.
    await sql`create table processing_seen (task_id text not null, n integer not null)`.execute(stack.app.db);
    await sql`create trigger count_processing after update of status on tasks when new.status = 'processing'
      begin insert into processing_seen select new.id, count(*) from tasks where status = 'processing'; end`.execute(stack.app.db);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await postGenerate(stack.app.url, { description: `task ${i}`, steps: '4', size: '256x256' });
      ids.push(((await r.json()) as { task_id: string }).task_id);
    }
    let sawPosition = false;
    await until('all three tasks to finish', async () => {
      const last = await taskStatus(stack!.app.url, ids[2]!);
      if (last.status === 'pending' && last.queue_position !== null) sawPosition = true;
      return (await countByStatus(stack!.app.db)).completed === 3;
    });
    const seen = await sql<{ task_id: string; n: number }>`select task_id, n from processing_seen order by rowid`.execute(stack.app.db);
    expect(seen.rows.map((r) => r.task_id).sort()).toEqual([...ids].sort()); // each claim seen, once
    expect(seen.rows.map((r) => r.n)).toEqual([1, 1, 1]);
    expect(sawPosition).toBe(true);
  });

  it('hands changed queue positions to their watchers over several turns of the event loop: a burst of them never holds the loop', async () => {
    stack = await startStack({ config: { maxConcurrentTasks: 1 }, sim: { stepMs: 40 } });
    const post = async (d: string) => ((await (await postGenerate(stack!.app.url, { description: d, steps: '50', size: '256x256' })).json()) as { task_id: string }).task_id;
    const running = await post('running');
    const queued: string[] = [];
    for (let i = 0; i < 4; i++) queued.push(await post(`queued ${i}`));
    await until('the first task to run and the others to know their place', async () => {
      const last = await taskStatus(stack!.app.url, queued[3]!);
      return (await taskStatus(stack!.app.url, running)).status === 'processing' && last.queue_position === 4;
    });
    // Turns of the event loop, counted in its check phase, where the hub's next turn starts too.
    let turn = 0;
    let ticker = setImmediate(function tick() {
      turn++;
      ticker = setImmediate(tick);
    });
    // A full turn's worth of watchers on each task that moves up: no two of their frames fit in one turn.
    const watches = await Promise.all(queued.slice(1).map((id) => Promise.all(Array.from({ length: WATCHERS_PER_TURN }, () => stack!.app.service.watch(id, OPEN_CALLER)))));
    try {
      // Once the running task is cancelled, queued[0] runs and queued[1..3] move up to 1..3.
      const arrived = watches.map(async ([watch], i) => {
        for await (const f of watch!) if (f.status === 'pending' && f.queuePosition === i + 1) return turn;
        throw new Error(`queued ${i + 1} never got position ${i + 1}`);
      });
      await fetch(`${stack.app.url}/api/task/${running}/cancel`, { method: 'POST' });
      const turns = await Promise.all(arrived);
      expect(new Set(turns).size).toBe(3);
    } finally {
      clearImmediate(ticker);
      for (const w of watches.flat()) await w?.return?.();
    }
  });

  it('cancels a pending task at once, and nothing of it reaches ComfyUI', async () => {
    stack = await startStack({ config: { maxConcurrentTasks: 1 }, sim: { stepMs: 40 } });
    const first = ((await (await postGenerate(stack.app.url, { description: 'first', steps: '10', size: '256x256' })).json()) as { task_id: string }).task_id;
    const second = ((await (await postGenerate(stack.app.url, { description: 'second', steps: '10', size: '256x256' })).json()) as { task_id: string }).task_id;
    const res = await fetch(`${stack.app.url}/api/task/${second}/cancel`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ task_id: second, status: 'cancelled', images: [] });
    await waitForStatus(stack.app.url, first, ['completed']);
    const images = await imagesOfTask(stack.app.db, second);
    expect(images.map((i) => [i.status, i.worker])).toEqual([['cancelled', null]]);
    const history = (await (await fetch(`${stack.sims[0]!.url}/history`)).json()) as Record<string, unknown>;
    expect(Object.keys(history)).not.toContain(images[0]!.prompt_id);
  });

  it('cancels a processing task: waiting prompts leave the ComfyUI queue, the running one is interrupted, finished images stay', async () => {
    // Four seconds per image: ComfyUI goes idle soon after the cancel only if the running prompt was
    // interrupted and the waiting one deleted; left alone they would run for seconds and succeed.
    stack = await startStack({ sim: { stepMs: 100 } });
    const sim = stack.sims[0]!.url;
    const comfyQueue = async () => (await (await fetch(`${sim}/queue`)).json()) as { queue_running: unknown[][]; queue_pending: unknown[][] };
    const id = ((await (await postGenerate(stack.app.url, { description: 'four', count: '4', steps: '40', size: '256x256' })).json()) as { task_id: string }).task_id;
    await until('the first image, with the second running and the third waiting in ComfyUI', async () => {
      if ((await taskStatus(stack!.app.url, id)).images.length < 1) return false;
      const q = await comfyQueue();
      return q.queue_running.length === 1 && q.queue_pending.length === 1;
    });
    const res = await fetch(`${stack.app.url}/api/task/${id}/cancel`, { method: 'POST' });
    const body = (await res.json()) as { status: string; images: string[] };
    expect(body.status).toBe('cancelled');
    expect(body.images).toHaveLength(1);
    expect((await fetch(body.images[0]!)).status).toBe(200);
    const prompts = (await imagesOfTask(stack.app.db, id)).map((i) => i.prompt_id);
    await until('ComfyUI to be idle', async () => {
      const q = await comfyQueue();
      return q.queue_running.length === 0 && q.queue_pending.length === 0;
    });
    type Entry = { status: { status_str: string; messages: [string, { prompt_id?: string }][] } };
    const history = (await (await fetch(`${sim}/history`)).json()) as Record<string, Entry>;
    expect(history[prompts[0]!]?.status.status_str).toBe('success');
    // The running prompt was interrupted, not left to finish.
    expect(history[prompts[1]!]?.status.status_str).toBe('error');
    expect(history[prompts[1]!]?.status.messages.at(-1)).toEqual(['execution_interrupted', expect.objectContaining({ prompt_id: prompts[1] })]);
    // The waiting prompt left the queue without running; the fourth was never submitted.
    expect(Object.keys(history).sort()).toEqual([prompts[0]!, prompts[1]!].sort());

    // Nothing of the cancelled task finishes afterwards. ComfyUI has nothing of it left; a task run
    // after it on the same ComfyUI gets its messages after the cancelled prompts' last ones.
    const next = ((await (await postGenerate(stack.app.url, { description: 'after', steps: '1', size: '256x256' })).json()) as { task_id: string }).task_id;
    await waitForStatus(stack.app.url, next, ['completed']);
    const after = await taskStatus(stack.app.url, id);
    expect(after).toMatchObject({ status: 'cancelled' });
    expect(after.images).toEqual(body.images);
    expect((await imagesOfTask(stack.app.db, id)).map((i) => i.status)).toEqual(['completed', 'cancelled', 'cancelled', 'cancelled']);
  });

  it('fails an image that takes longer than COMFYUI_TIMEOUT, naming the worker and the time waited', async () => {
    stack = await startStack({ config: { comfyuiTimeoutS: 1 }, sim: { stepMs: 200 } });
    const id = ((await (await postGenerate(stack.app.url, { description: 'slow', steps: '20', size: '256x256' })).json()) as { task_id: string }).task_id;
    const done = await waitForStatus(stack.app.url, id, ['failed', 'completed'], 10_000);
    expect(done.status).toBe('failed');
    expect(done.error_message).toContain(`timed out on ComfyUI at ${stack.sims[0]!.url} after 1 s`);
    await until('the prompt to leave ComfyUI', async () => {
      const q = (await (await fetch(`${stack!.sims[0]!.url}/queue`)).json()) as { queue_running: unknown[] };
      return q.queue_running.length === 0;
    }, 5000);
  });

  it('still yields images when ComfyUI serves an identical re-run from its cache', async () => {
    stack = await startStack();
    const fields = { description: 'same again', steps: '4', size: '256x256', seed: '7' };
    const image = await makeImage('png', 300, 200);
    const a = ((await (await postGenerate(stack.app.url, fields, image)).json()) as { task_id: string }).task_id;
    const first = await waitForStatus(stack.app.url, a, ['completed', 'failed']);
    const b = ((await (await postGenerate(stack.app.url, fields, image)).json()) as { task_id: string }).task_id;
    const second = await waitForStatus(stack.app.url, b, ['completed', 'failed']);
    expect(second.status).toBe('completed');
    const [x, y] = await Promise.all(
      [first.images[0]!, second.images[0]!].map(async (u) => sharp(Buffer.from(await (await fetch(u)).arrayBuffer())).raw().toBuffer()),
    );
    // Same reference, prompt and seed: the same picture (the files differ only in their metadata).
    expect(x!.equals(y!)).toBe(true);
  });

  it('spreads the images of one task over idle workers', async () => {
    stack = await startStack({ workers: 3, sim: { stepMs: 40 } });
    const id = ((await (await postGenerate(stack.app.url, { description: 'spread', count: '4', steps: '8', size: '256x256' })).json()) as { task_id: string }).task_id;
    await waitForStatus(stack.app.url, id, ['completed']);
    const images = await imagesOfTask(stack.app.db, id);
    expect(new Set(images.map((i) => i.worker)).size).toBe(3);
    // The first three ran at the same time.
    const spans = images.slice(0, 3).map((i) => [Date.parse(i.submitted_at!), Date.parse(i.finished_at!)] as const);
    const latestStart = Math.max(...spans.map((s) => s[0]));
    const earliestEnd = Math.min(...spans.map((s) => s[1]));
    expect(latestStart).toBeLessThan(earliestEnd);
  });

  it('deletes old finished tasks with their files, keeping an upload another task still uses', async () => {
    stack = await startStack({ config: { maxConcurrentTasks: 1 }, sim: { stepMs: 50 } });
    const image = await makeImage('png', 120, 90);
    const post = async (d: string, steps: string) =>
      ((await (await postGenerate(stack!.app.url, { description: d, steps, size: '256x256' }, image)).json()) as { task_id: string }).task_id;
    const old = await post('old', '2');
    const busy = await post('busy', '100'); // five seconds: still unfinished when the cleanup runs
    await waitForStatus(stack.app.url, old, ['completed']);
    const oldFiles = (await imagesOfTask(stack.app.db, old)).map((i) => join(stack!.config.dataDir, i.file_path!));
    const upload = (await readdir(join(stack.config.dataDir, 'uploads'))).filter((f) => !f.startsWith('.'));
    expect(upload).toHaveLength(1);

    expect(await stack.app.engine.cleanup(0)).toBe(1);
    expect((await fetch(`${stack.app.url}/api/task-status/${old}`)).status).toBe(404);
    for (const f of oldFiles) await expect(stat(f)).rejects.toThrow(/ENOENT/);
    expect(await readdir(join(stack.config.dataDir, 'uploads'))).toEqual(upload); // "busy" still needs it

    await fetch(`${stack.app.url}/api/task/${busy}/cancel`, { method: 'POST' });
    expect(await stack.app.engine.cleanup(0)).toBe(1);
    // The folder store removes a folder with its last file.
    expect(await readdir(join(stack.config.dataDir, 'uploads')).catch(() => [])).toEqual([]);
  });

  it('does not leave a task processing forever when no worker is reachable', async () => {
    stack = await startStack({ config: { comfyuiTimeoutS: 1, healthDetails: true } });
    await stack.sims[0]!.close();
    await until('the worker to be seen down', () => !stack!.app.pool.members[0]!.healthy);
    const id = ((await (await postGenerate(stack.app.url, { description: 'nobody home', size: '256x256' })).json()) as { task_id: string }).task_id;
    const done = await waitForStatus(stack.app.url, id, ['failed', 'completed'], 10_000);
    expect(done.status).toBe('failed');
    expect(done.error_message).toContain(`no ComfyUI worker was reachable for 1 s: ${stack.sims[0]!.url}`);
    const ready = await fetch(`${stack.app.url}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ detail: 'No ComfyUI worker is reachable' });
    const health = (await (await fetch(`${stack.app.url}/health`)).json()) as { status: string; comfyui: { reachable: boolean; last_error: string }[] };
    expect(health.status).toBe('degraded');
    expect(health.comfyui[0]!.reachable).toBe(false);
    expect(health.comfyui[0]!.last_error).toMatch(/unreachable/);
  });

  it('finishes, after a restart, a task whose images were all done when the service died', async () => {
    stack = await startStack();
    const id = ((await (await postGenerate(stack.app.url, { description: 'almost', count: '2', steps: '3', size: '256x256' })).json()) as { task_id: string }).task_id;
    await waitForStatus(stack.app.url, id, ['completed']);
    await stack.app.close();
    // As if the process died between the last image's write and the task's.
    const db = await openDatabase({ file: join(stack.config.dataDir, 'kontext.db') });
    await db.updateTable('tasks').set({ status: 'processing', progress: 80, finished_at: null }).where('id', '=', id).execute();
    await db.destroy();
    const app = await stack.restart();
    const done = await waitForStatus(app.url, id, ['completed', 'failed'], 5000);
    expect(done).toMatchObject({ status: 'completed', progress: 100 });
    expect(done.images).toHaveLength(2);
  });

  it('publishes sampler previews as data URLs, a few per second at most, and never stores them', async () => {
    stack = await startStack({ sim: { stepMs: 25, previewMethod: 'auto' }, app: { ...FAST, engine: { ...FAST.engine, previewIntervalMs: 200 } } });
    const id = ((await (await postGenerate(stack.app.url, { description: 'preview', steps: '24', size: '256x256' })).json()) as { task_id: string }).task_id;
    const frames = await collect(await stack.app.service.watch(id, OPEN_CALLER));
    const withPreview = frames.filter((f) => f.preview);
    expect(withPreview.length).toBeGreaterThanOrEqual(2);
    expect(withPreview.length).toBeLessThan(24);
    expect(withPreview[0]!.preview).toMatch(/^data:image\/jpeg;base64,\/9j\//);
    // The ETA comes from measured step times and shrinks as sampling goes on.
    const timed = frames.filter((f) => f.status === 'processing' && (f.step ?? 0) >= 2);
    expect(timed.every((f) => typeof f.etaSeconds === 'number')).toBe(true);
    expect(timed[0]!.etaSeconds!).toBeGreaterThan(timed.at(-1)!.etaSeconds!);
    const row = await stack.app.db.selectFrom('tasks').select('last_frame').where('id', '=', id).executeTakeFirstOrThrow();
    expect(JSON.parse(row.last_frame!).preview).toBeNull();
  });

  it('never sends progress back when step frames wait behind an image being recorded', async () => {
    // Recording an image holds the task's chain a while; the next image's steps queue behind it. A step
    // frame whose progress was computed when it queued came after the recorded image's, and was lower.
    const slow: Transitions = {
      ...transitions,
      completeImage: async (...args) => {
        await new Promise((r) => setTimeout(r, 300));
        return transitions.completeImage(...args);
      },
    };
    stack = await startStack({ sim: { stepMs: 15 }, app: { ...FAST, engine: { ...FAST.engine, transitions: slow } } });
    const id = ((await (await postGenerate(stack.app.url, { description: 'held', count: '3', steps: '30', size: '256x256' })).json()) as { task_id: string }).task_id;
    const frames = await collect(await stack.app.service.watch(id, OPEN_CALLER));
    expect(frames.at(-1)).toMatchObject({ status: 'completed', progress: 100 });
    // Steps did arrive while an image was being recorded (the case above), and progress never went back.
    expect(frames.filter((f) => f.step !== null).length).toBeGreaterThan(10);
    for (let i = 1; i < frames.length; i++) expect(frames[i]!.progress, `frame ${frames[i]!.seq}`).toBeGreaterThanOrEqual(frames[i - 1]!.progress);
  });
});
