/**
 * GPU feed: how close the service keeps ComfyUI busy. 12 tasks of 4 images of real size
 * (1024x1024 photographic PNGs, ~1.5 MB) run through the service on 1 and on 3 simulators, each
 * behind a 20 ms, 200 Mbit/s link (bench/feed-workload.ts); the baseline is the same 48 prompts put
 * straight into the simulators' queues at once (the GPU never idles: the limit), and a second
 * baseline is the old service's strategy (submit one image, wait for it, download it, submit the
 * next). Where each run's GPU time went is read from the simulators' histories. Three rounds,
 * each running the three side by side; a row shows the round with the median ratio.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { makeImage } from '../test/helpers/images.js';
import { direct, type FeedSimulator, linkNote, postWorkloadTask, TASKS, untilCompleted, withSimulators, workloadLabel } from './feed-workload.js';
import type { BenchRow } from './table.js';
import { headAndTail, workerTimeline, type Timed, type WorkerTimeline } from './worker-idle.js';

/** A run and each worker's timeline from its history. */
type Traced = Timed & { workers: WorkerTimeline[] };

/** The same work through the service: 12 tasks posted at once, until the last one completes. */
async function throughService(sims: FeedSimulator[], reference: Buffer, dir: string): Promise<Timed> {
  const app = await startApp({ ...loadConfig({}), host: '127.0.0.1', port: 0, dataDir: join(dir, `svc-${sims.length}-${Date.now()}`), comfyuiUrls: sims.map((s) => s.url) });
  try {
    // A running service is warm: a fresh process's first task pays ~150 ms of first-time code
    // paths (10 posts in a row: 234 ms cold, 66-72 ms warm), which is start-up, not feeding. Its
    // reference is another image: the measured tasks' one reaches each server inside the clock, as
    // the ideal's does (warming up with it left it on one server, which then started ahead and
    // could take a 17th prompt while another ran 15).
    await untilCompleted(app, await postWorkloadTask(app.url, await makeImage('png', 64, 48), 'warm-up', 1));
    await Promise.all(sims.map((s) => fetch(`${s.url}/history`, { method: 'POST', body: JSON.stringify({ clear: true }) })));
    const startedAt = Date.now();
    const start = performance.now();
    const ids = await Promise.all(Array.from({ length: TASKS }, (_, t) => postWorkloadTask(app.url, reference, t)));
    for (const id of ids) await untilCompleted(app, id);
    return { ms: performance.now() - start, startedAt, endedAt: Date.now() };
  } finally {
    await app.close();
  }
}

/** Runs `fn` on fresh simulators and reads their timelines after. */
function traced(n: number, dir: string, fn: (sims: FeedSimulator[]) => Promise<Timed>): Promise<Traced> {
  return withSimulators(n, dir, async (sims) => ({ ...(await fn(sims)), workers: await Promise.all(sims.map((s) => workerTimeline(s.url))) }));
}

/** Where a run's time went besides the GPU: idle between prompts (from the histories), the head and the tail. */
function spent(run: Traced): string {
  const { head, lastHead, tail } = headAndTail(run, run.workers);
  const idle = run.workers.reduce((n, w) => n + w.idleBetweenMs, 0);
  const spread = run.workers.length > 1 ? ` (on the last worker after ${lastHead.toFixed(0)} ms; prompts per worker ${run.workers.map((w) => w.prompts).join('/')})` : '';
  return `idle between prompts ${idle.toFixed(0)} ms in all, first prompt started after ${head.toFixed(0)} ms${spread}, last result in ${tail.toFixed(0)} ms after the last prompt ended`;
}

/** Rounds per worker count; each round runs the three side by side, in a rotated order (the machine is shared and noisy). */
const ROUNDS = 3;

type Kind = 'ideal' | 'service' | 'old';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The GPU-feed rows: the service and the old one-by-one strategy, on 1 and on 3 simulators, each against all queued at once. */
export async function benchGpuFeed(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-feed-'));
  const reference = await makeImage('png', 320, 240);
  const link = await linkNote();
  const rows: BenchRow[] = [];
  try {
    for (const n of [1, 3]) {
      const runs: Record<Kind, Traced[]> = { ideal: [], service: [], old: [] };
      const run: Record<Kind, () => Promise<Traced>> = {
        ideal: () => traced(n, dir, (sims) => direct(sims, reference, 'all-at-once')),
        service: () => traced(n, dir, (sims) => throughService(sims, reference, dir)),
        old: () => traced(n, dir, (sims) => direct(sims, reference, 'one-by-one')),
      };
      const order: Kind[] = ['ideal', 'service', 'old'];
      for (let r = 0; r < ROUNDS; r++) {
        for (let k = 0; k < order.length; k++) {
          const kind = order[(k + r) % order.length]!;
          runs[kind].push(await run[kind]());
        }
      }
      /** The round whose ratio is the median, its runs, and every round's ratio. */
      const paired = (kind: 'service' | 'old') => {
        const ratios = runs[kind].map((x, r) => runs.ideal[r]!.ms / x.ms);
        const r = ratios.indexOf(median(ratios));
        return { ratio: ratios[r]!, run: runs[kind][r]!, ideal: runs.ideal[r]!, all: ratios.map((x) => x.toFixed(3)).join(', ') };
      };
      const label = workloadLabel(n);
      const row = (kind: 'service' | 'old', name: string, why: string): BenchRow => {
        const p = paired(kind);
        return {
          name: `GPU feed: ${name} (${label})`,
          figure: `${(p.run.ms / 1000).toFixed(2)} s`,
          baseline: `${(p.ideal.ms / 1000).toFixed(2)} s all queued at once (${spent(p.ideal)})`,
          ratio: p.ratio,
          ratioLabel: 'utilization',
          note: `${why}: ${spent(p.run)}; median of ${ROUNDS} rounds run side by side (${p.all}); ${link}`,
        };
      };
      rows.push(row('service', 'service', 'the next prompt already waits in ComfyUI, so downloading a result never idles the GPU'));
      rows.push(row('old', 'old one-by-one', 'the GPU idles while each result is downloaded and the next prompt sent'));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
