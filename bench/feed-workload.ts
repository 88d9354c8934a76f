/**
 * The GPU-feed workload (12 tasks of 4 images, 20 steps of 25 ms, 256x256) and its ideal: the same
 * prompts put straight into the simulators' queues at once, so the GPU never idles. The same mix
 * as bench/gpu-feed.ts, so the replica row compares with its rows.
 */
import { join } from 'node:path';
import { startSimulator, type Simulator } from '../simulator/server.js';
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

/** The ideal: all `TASKS x IMAGES` prompts submitted to the simulators at once, round robin, until the last result. */
export async function allQueuedAtOnce(sims: Simulator[], reference: Buffer): Promise<Timed> {
  const workflow = await loadWorkflow();
  const workers = sims.map((s) => new ComfyWorker(s.url));
  await Promise.all(workers.map((w) => w.start()));
  try {
    const names = await Promise.all(workers.map((w) => w.uploadImage(reference, 'bench-ref.png', { overwrite: true })));
    const run = `bench-ideal-${sims.length}-${Date.now()}`;
    const startedAt = Date.now();
    const start = performance.now();
    await Promise.all(
      Array.from({ length: TASKS * IMAGES }, (_, i) =>
        workers[i % workers.length]!.run(
          promptIdFor(run, i),
          bindWorkflow(workflow, {
            description: 'benchmark',
            seed: 1000 + i,
            steps: STEPS,
            guidance: 2.5,
            size: SIZE,
            referenceImage: names[i % workers.length]!.name,
            filenamePrefix: `bench/ideal_${i}`,
          }),
          { outputNode: workflow.binding.outputNode, timeoutMs: 600_000 },
        ),
      ),
    );
    return { ms: performance.now() - start, startedAt, endedAt: Date.now() };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
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
