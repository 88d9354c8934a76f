/**
 * The GPU-feed workload (12 tasks of 4 images, 20 steps of 25 ms) for bench/gpu-feed.ts and
 * bench/replica-feed.ts, so their rows compare: posted to the service, or its prompts put straight
 * into the simulators' queues (all at once, the ideal where the GPU never idles; or one by one, the
 * old service's strategy). Results are the size real ones are (1024x1024 photographic PNGs of
 * ~1.4-1.6 MB) and each simulator sits behind a 20 ms, 200 Mbit/s link that it simulates itself
 * (simulator/link.ts: tc netem is not available here). Each simulator runs in a process of its own.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { preparePhotos } from '../simulator/photo.js';
import type { Simulator } from '../simulator/server.js';
import type { App } from '../src/app.js';
import { OPEN_CALLER } from '../src/auth/caller.js';
import { ComfyWorker } from '../src/comfyui/worker.js';
import { bindWorkflow, loadWorkflow } from '../src/comfyui/workflow.js';
import { promptIdFor } from '../src/tasks/ids.js';
import { makeImage } from '../test/helpers/images.js';
import { startSimulatorProcess } from '../test/helpers/processes.js';
import type { Timed } from './worker-idle.js';

/** Tasks per run. */
export const TASKS = 12;
/** Images per task. */
export const IMAGES = 4;
/** Sampling steps per image. */
export const STEPS = 20;
/** The simulator's time per step, ms. */
export const STEP_MS = 25;
/** Output size: a real result's. */
export const SIZE = { width: 1024, height: 1024 };
/** The link between the service and each simulator: round trip ms and Mbit/s, simulated by the simulator. */
export const LINK = { rttMs: 20, mbit: 200 };


/** A short label of the workload for row names. */
export function workloadLabel(workers: number): string {
  return `${TASKS}x${IMAGES} images of ${SIZE.width}x${SIZE.height}, ${STEPS} steps x ${STEP_MS} ms, ${workers} worker${workers > 1 ? 's' : ''}`;
}

/** The link and result sizes, for row notes (each simulator process paints its own pictures before its run, see `paintPhotos`). */
export async function linkNote(): Promise<string> {
  const sizes = await preparePhotos(SIZE.width, SIZE.height);
  const mb = (n: number) => (n / 1e6).toFixed(2);
  return `results ${mb(Math.min(...sizes))}-${mb(Math.max(...sizes))} MB PNGs over a ${LINK.rttMs} ms, ${LINK.mbit} Mbit/s link per simulator (the simulator throttles itself: tc netem is not available here)`;
}

/** A simulator as the feed benches use it: its URL. */
export type FeedSimulator = Pick<Simulator, 'url'>;

/**
 * Runs `fn` with `n` fresh simulators (under `dir`), each in a process of its own, closed after.
 * ComfyUI runs elsewhere: in the bench's process the simulated GPU shared the service's event loop
 * and thread pool, and its prompts ran longer while the service worked (one run: the same 16
 * prompts per worker spanned 8.71 s under the service against 8.41 s under the ideal).
 */
export async function withSimulators<T>(n: number, dir: string, fn: (sims: FeedSimulator[]) => Promise<T>): Promise<T> {
  const args = (i: number) => [
    '--port', '0', '--step-ms', String(STEP_MS), '--result-images', 'photo', '--link-rtt-ms', String(LINK.rttMs), '--link-mbit', String(LINK.mbit),
    '--base-dir', join(dir, `sim-${n}-${i}-${Date.now()}`),
  ];
  const sims = await Promise.all(Array.from({ length: n }, (_, i) => startSimulatorProcess(args(i))));
  try {
    await Promise.all(sims.map((s) => paintPhotos(s.url)));
    return await fn(sims.map((s) => ({ url: s.url })));
  } finally {
    await Promise.all(sims.map((s) => s.kill('SIGTERM')));
  }
}

/**
 * Has a fresh simulator process paint and encode its photo results (a few hundred ms of CPU per
 * variant, paid once per process) with one-step prompts of other seeds, then forgets them.
 */
async function paintPhotos(url: string): Promise<void> {
  const workflow = await loadWorkflow();
  const worker = new ComfyWorker(url);
  await worker.start();
  try {
    const { name } = await worker.uploadImage(await makeImage('png', 64, 48), 'bench-paint.png', { overwrite: true });
    // Each prompt picks one of PHOTO_VARIANTS by its hash: 40 miss one with a chance of ~0.03%.
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        worker.run(
          promptIdFor(`paint-${url}`, i),
          bindWorkflow(workflow, { description: 'paint', seed: 900_000 + i, steps: 1, guidance: 2.5, size: SIZE, referenceImage: name, filenamePrefix: `paint/${i}` }),
          { outputNode: workflow.binding.outputNode, timeoutMs: 120_000 },
        ),
      ),
    );
  } finally {
    await worker.stop();
  }
  await fetch(`${url}/history`, { method: 'POST', body: JSON.stringify({ clear: true }) });
}

/**
 * How the prompts go straight to the simulators: `all-at-once` queues every prompt at once (the
 * ideal: the GPU never idles); `one-by-one` submits one, waits for its result and downloads it,
 * then the next, per worker (the old service's strategy). Both download every result.
 */
export type DirectMode = 'all-at-once' | 'one-by-one';

/** The workload's `TASKS x IMAGES` prompts run on the simulators directly (round robin), timed from the first submission to the last result. */
export async function direct(sims: FeedSimulator[], reference: Buffer, mode: DirectMode): Promise<Timed> {
  const workflow = await loadWorkflow();
  const workers = sims.map((s) => new ComfyWorker(s.url));
  const downloads = await mkdtemp(join(tmpdir(), 'kontext-bench-direct-'));
  await Promise.all(workers.map((w) => w.start()));
  try {
    // The reference goes to each server inside the clock, as the service's must: the ideal starts
    // when the bytes are there, not before.
    let names: { name: string }[] = [];
    const run = `bench-${mode}-${sims.length}-${Date.now()}`;
    const jobs = Array.from({ length: TASKS * IMAGES }, (_, i) => ({ i, w: i % workers.length }));
    const runOne = async ({ i, w }: { i: number; w: number }): Promise<void> => {
      const result = await workers[w]!.run(
        promptIdFor(run, i),
        bindWorkflow(workflow, {
          description: 'benchmark',
          seed: 1000 + i,
          steps: STEPS,
          guidance: 2.5,
          size: SIZE,
          referenceImage: names[w]!.name,
          filenamePrefix: `bench/${mode}_${i}`,
        }),
        { outputNode: workflow.binding.outputNode, timeoutMs: 600_000 },
      );
      const file = result.images[0];
      if (!file) throw new Error(`prompt ${i} finished without an image`);
      await workers[w]!.download(file, join(downloads, `${i}.png`));
    };
    const startedAt = Date.now();
    const start = performance.now();
    names = await Promise.all(workers.map((w) => w.uploadImage(reference, 'bench-ref.png', { overwrite: true })));
    if (mode === 'all-at-once') {
      await Promise.all(jobs.map(runOne));
    } else {
      await Promise.all(
        workers.map(async (_, w) => {
          for (const job of jobs.filter((j) => j.w === w)) await runOne(job);
        }),
      );
    }
    return { ms: performance.now() - start, startedAt, endedAt: Date.now() };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await rm(downloads, { recursive: true, force: true });
  }
}

/** The ideal: every prompt queued on the simulators at once, until the last result. */
export function allQueuedAtOnce(sims: FeedSimulator[], reference: Buffer): Promise<Timed> {
  return direct(sims, reference, 'all-at-once');
}

/** Posts task `t` of the workload to `baseUrl` (the legacy form route), of `count` images (default IMAGES); returns its id. */
export async function postWorkloadTask(baseUrl: string, reference: Buffer, t: number | string, count = IMAGES): Promise<string> {
  const form = new FormData();
  form.set('description', `benchmark ${t}`);
  form.set('count', String(count));
  form.set('steps', String(STEPS));
  form.set('size', `${SIZE.width}x${SIZE.height}`);
  // Blob's typings (lib.dom, which Yoga's types pull in) want a plain ArrayBuffer; Node's Buffers from sharp/readFile are.
  form.set('referenceImage', new Blob([reference as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'ref.png');
  const res = await fetch(`${baseUrl}/generate-image`, { method: 'POST', body: form });
  if (res.status !== 200) throw new Error(`generate-image: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { task_id: string }).task_id;
}

/** Waits for task `id` on `app` to complete; throws when it fails, is cancelled or is not found. */
export async function untilCompleted(app: App, id: string): Promise<void> {
  const frames = await app.service.watch(id, OPEN_CALLER);
  if (!frames) throw new Error(`task ${id} not found on ${app.url}`);
  for await (const f of frames) if (f.status === 'failed' || f.status === 'cancelled') throw new Error(`task ${f.status}: ${f.error}`);
}
