/**
 * GPU feed: how close the service keeps ComfyUI busy. 12 tasks of 4 images run through the
 * service on 1 and on 3 simulators at a fixed step time; the baseline is the same 48 prompts put
 * straight into the simulators' queues at once (the GPU never idles: the limit), and a second
 * baseline is the old service's strategy (submit one image, wait for it, submit the next).
 */
import { OPEN_CALLER } from '../src/auth/caller.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp } from '../src/app.js';
import { startSimulator, type Simulator } from '../simulator/server.js';
import { ComfyWorker } from '../src/comfyui/worker.js';
import { bindWorkflow, loadWorkflow } from '../src/comfyui/workflow.js';
import { loadConfig } from '../src/config.js';
import { promptIdFor } from '../src/tasks/ids.js';
import { makeImage } from '../test/helpers/images.js';
import type { BenchRow } from './table.js';

const TASKS = 12;
const IMAGES = 4;
const STEPS = 20;
const STEP_MS = 25;
const SIZE = { width: 256, height: 256 };

async function withSimulators<T>(n: number, dir: string, fn: (sims: Simulator[]) => Promise<T>): Promise<T> {
  const sims = await Promise.all(Array.from({ length: n }, (_, i) => startSimulator({ port: 0, stepMs: STEP_MS, baseDir: join(dir, `sim-${n}-${i}-${Date.now()}`) })));
  try {
    return await fn(sims);
  } finally {
    await Promise.all(sims.map((s) => s.close()));
  }
}

/** Runs the 48 prompts on the workers directly: all at once (`parallel`), or one after another per worker. */
async function direct(sims: Simulator[], reference: Buffer, mode: 'all-at-once' | 'one-by-one'): Promise<number> {
  const workflow = await loadWorkflow();
  const workers = sims.map((s) => new ComfyWorker(s.url));
  await Promise.all(workers.map((w) => w.start()));
  const names = await Promise.all(workers.map((w) => w.uploadImage(reference, 'bench-ref.png', { overwrite: true })));
  const jobs = Array.from({ length: TASKS * IMAGES }, (_, i) => ({ i, w: i % workers.length }));
  const runOne = ({ i, w }: { i: number; w: number }) =>
    workers[w]!.run(
      promptIdFor(`bench-${mode}-${sims.length}-${Date.now()}`, i),
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
  const start = performance.now();
  if (mode === 'all-at-once') {
    await Promise.all(jobs.map(runOne));
  } else {
    await Promise.all(workers.map(async (_, w) => {
      for (const job of jobs.filter((j) => j.w === w)) await runOne(job);
    }));
  }
  const elapsed = performance.now() - start;
  await Promise.all(workers.map((w) => w.stop()));
  return elapsed;
}

/** The same work through the service: 12 tasks posted at once, until the last one completes. */
async function throughService(sims: Simulator[], reference: Buffer, dir: string): Promise<number> {
  const app = await startApp({ ...loadConfig({}), host: '127.0.0.1', port: 0, dataDir: join(dir, `svc-${sims.length}`), comfyuiUrls: sims.map((s) => s.url) });
  try {
    const start = performance.now();
    const ids = await Promise.all(
      Array.from({ length: TASKS }, async (_, t) => {
        const form = new FormData();
        form.set('description', `benchmark ${t}`);
        form.set('count', String(IMAGES));
        form.set('steps', String(STEPS));
        form.set('size', `${SIZE.width}x${SIZE.height}`);
        // Blob's typings (lib.dom, which Yoga's types pull in) want a plain ArrayBuffer; Node's Buffers from sharp/readFile are.
        form.set('referenceImage', new Blob([reference as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'ref.png');
        const res = await fetch(`${app.url}/generate-image`, { method: 'POST', body: form });
        return ((await res.json()) as { task_id: string }).task_id;
      }),
    );
    for (const id of ids) {
      const frames = await app.service.watch(id, OPEN_CALLER);
      for await (const f of frames!) if (f.status === 'failed') throw new Error(`task failed: ${f.error}`);
    }
    return performance.now() - start;
  } finally {
    await app.close();
  }
}

export async function benchGpuFeed(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-feed-'));
  const reference = await makeImage('png', 320, 240);
  const rows: BenchRow[] = [];
  try {
    for (const n of [1, 3]) {
      const ideal = await withSimulators(n, dir, (sims) => direct(sims, reference, 'all-at-once'));
      const service = await withSimulators(n, dir, (sims) => throughService(sims, reference, dir));
      const old = await withSimulators(n, dir, (sims) => direct(sims, reference, 'one-by-one'));
      const label = `${TASKS}x${IMAGES} images, ${STEPS} steps x ${STEP_MS} ms, ${n} worker${n > 1 ? 's' : ''}`;
      rows.push({
        name: `GPU feed: service (${label})`,
        figure: `${(service / 1000).toFixed(2)} s`,
        baseline: `${(ideal / 1000).toFixed(2)} s all queued at once`,
        ratio: ideal / service,
        ratioLabel: 'utilization',
        note: 'the next prompt already waits in ComfyUI, so fetching a result never idles the GPU; left: the first submission and the last download',
      });
      rows.push({
        name: `GPU feed: old one-by-one (${label})`,
        figure: `${(old / 1000).toFixed(2)} s`,
        baseline: `${(ideal / 1000).toFixed(2)} s all queued at once`,
        ratio: ideal / old,
        ratioLabel: 'utilization',
        note: 'the GPU idles while each result is fetched and the next prompt sent: milliseconds on the simulator, more with large files or a slow link',
      });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
