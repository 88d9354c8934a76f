/**
 * GPU feed: how close the service keeps ComfyUI busy. 12 tasks of 4 images run through the
 * service on 1 and on 3 simulators at a fixed step time; the baseline is the same 48 prompts put
 * straight into the simulators' queues at once (the GPU never idles: the limit), and a second
 * baseline is the old service's strategy (submit one image, wait for it, submit the next). The
 * workload and the direct runs are bench/feed-workload.ts's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Simulator } from '../simulator/server.js';
import { startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { makeImage } from '../test/helpers/images.js';
import { direct, postWorkloadTask, TASKS, untilCompleted, withSimulators, workloadLabel } from './feed-workload.js';
import type { BenchRow } from './table.js';

/** Ms for the same work through the service: 12 tasks posted at once, until the last one completes. */
async function throughService(sims: Simulator[], reference: Buffer, dir: string): Promise<number> {
  const app = await startApp({ ...loadConfig({}), host: '127.0.0.1', port: 0, dataDir: join(dir, `svc-${sims.length}`), comfyuiUrls: sims.map((s) => s.url) });
  try {
    const start = performance.now();
    const ids = await Promise.all(Array.from({ length: TASKS }, (_, t) => postWorkloadTask(app.url, reference, t)));
    for (const id of ids) await untilCompleted(app, id);
    return performance.now() - start;
  } finally {
    await app.close();
  }
}

/** The GPU-feed rows: the service and the old one-by-one strategy, on 1 and on 3 simulators, each against all queued at once. */
export async function benchGpuFeed(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-feed-'));
  const reference = await makeImage('png', 320, 240);
  const rows: BenchRow[] = [];
  try {
    for (const n of [1, 3]) {
      const ideal = (await withSimulators(n, dir, (sims) => direct(sims, reference, 'all-at-once'))).ms;
      const service = await withSimulators(n, dir, (sims) => throughService(sims, reference, dir));
      const old = (await withSimulators(n, dir, (sims) => direct(sims, reference, 'one-by-one'))).ms;
      const label = workloadLabel(n);
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
