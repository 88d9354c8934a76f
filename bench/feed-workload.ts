/**
 * The GPU-feed workload (12 tasks of 4 images, 20 steps of 25 ms, 256x256) for bench/gpu-feed.ts
 * and bench/replica-feed.ts, so their rows compare: posted to the service, or its prompts put
 * straight into the simulators' queues (all at once, the ideal where the GPU never idles; or one
 * by one, the old service's strategy).
 */
import { join } from 'node:path';
import { startSimulator, type Simulator } from '../simulator/server.js';
import type { App } from '../src/app.js';
import { OPEN_CALLER } from '../src/auth/caller.js';
import { ComfyWorker } from '../src/comfyui/worker.js';
import { bindWorkflow, loadWorkflow } from '../src/comfyui/workflow.js';
import { promptIdFor } from '../src/tasks/ids.js';
import type { Timed } from './worker-idle.js';

/** Tasks per run. */
export const TASKS = 12;
/** Images per task. */
export const IMAGES = 4;
/** Sampling steps per image. */
export const STEPS = 20;
/** The simulator's time per step, ms. */
export const STEP_MS = 25;
/** Output size. */
export const SIZE = { width: 256, height: 256 };

/** A short label of the workload for row names. */
export function workloadLabel(workers: number): string {
  return `${TASKS}x${IMAGES} images, ${STEPS} steps x ${STEP_MS} ms, ${workers} worker${workers > 1 ? 's' : ''}`;
}

/** Runs `fn` with `n` fresh simulators (under `dir`), closed after. */
export async function withSimulators<T>(n: number, dir: string, fn: (sims: Simulator[]) => Promise<T>): Promise<T> {
  const sims = await Promise.all(Array.from({ length: n }, (_, i) => startSimulator({ port: 0, stepMs: STEP_MS, baseDir: join(dir, `sim-${n}-${i}-${Date.now()}`) })));
  try {
    return await fn(sims);
  } finally {
    await Promise.all(sims.map((s) => s.close()));
  }
}

/**
 * How the prompts go straight to the simulators: `all-at-once` queues every prompt at once (the
 * ideal: the GPU never idles); `one-by-one` submits one, waits for its result, then the next, per
 * worker (the old service's strategy).
 */
export type DirectMode = 'all-at-once' | 'one-by-one';

/** The workload's `TASKS x IMAGES` prompts run on the simulators directly (round robin), timed from the first submission to the last result. */
export async function direct(sims: Simulator[], reference: Buffer, mode: DirectMode): Promise<Timed> {
  const workflow = await loadWorkflow();
  const workers = sims.map((s) => new ComfyWorker(s.url));
  await Promise.all(workers.map((w) => w.start()));
  try {
    const names = await Promise.all(workers.map((w) => w.uploadImage(reference, 'bench-ref.png', { overwrite: true })));
    const run = `bench-${mode}-${sims.length}-${Date.now()}`;
    const jobs = Array.from({ length: TASKS * IMAGES }, (_, i) => ({ i, w: i % workers.length }));
    const runOne = ({ i, w }: { i: number; w: number }) =>
      workers[w]!.run(
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
    const startedAt = Date.now();
    const start = performance.now();
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
  }
}

/** The ideal: every prompt queued on the simulators at once, until the last result. */
export function allQueuedAtOnce(sims: Simulator[], reference: Buffer): Promise<Timed> {
  return direct(sims, reference, 'all-at-once');
}

/** Posts one task of the workload to `baseUrl` (the legacy form route); returns its id. */
export async function postWorkloadTask(baseUrl: string, reference: Buffer, t: number): Promise<string> {
  const form = new FormData();
  form.set('description', `benchmark ${t}`);
  form.set('count', String(IMAGES));
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
