/**
 * GPU feed with 3 replicas and 2 workers: the GPU-feed workload (bench/feed-workload.ts: real-size
 * results over a simulated 20 ms, 200 Mbit/s link) posted
 * round robin to 3 replicas (in this process) on one PostgreSQL database and Redis, each task
 * watched on the replica that received it, until the last one completes. The baseline is the same
 * prompts queued on the 2 simulators at once (the GPU never idles), measured in the same run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { makeImage } from '../test/helpers/images.js';
import { allQueuedAtOnce, type FeedSimulator, linkNote, postWorkloadTask, TASKS, untilCompleted, withSimulators, workloadLabel } from './feed-workload.js';
import { createTestDatabase, REDIS_URL, urlOf } from './replica-servers.js';
import type { BenchRow } from './table.js';
import { headAndTail, workerTimeline, type Timed, type WorkerTimeline } from './worker-idle.js';

const REPLICAS = 3;
const WORKERS = 2;

/** Ms from posting the workload (round robin over the replicas) to its last task completing, and each worker's timeline. */
async function throughReplicas(sims: FeedSimulator[], reference: Buffer, dir: string): Promise<Timed & { workers: WorkerTimeline[] }> {
  const database = await createTestDatabase('postgres');
  const apps: App[] = [];
  try {
    // One DATA_DIR for all, as a shared volume; production defaults otherwise (1 s tick, 2 slots per server).
    const config = { ...loadConfig({}), host: '127.0.0.1', port: 0, dataDir: join(dir, 'replicas'), comfyuiUrls: sims.map((s) => s.url), databaseUrl: urlOf(database.target), redisUrl: REDIS_URL };
    for (let r = 0; r < REPLICAS; r++) apps.push(await startApp(config, { instance: `bench-replica-${r}` }));
    // Running replicas are warm: one 1-image task through each first (as bench/gpu-feed.ts does), then clean histories.
    await Promise.all(apps.map(async (app, r) => untilCompleted(app, await postWorkloadTask(app.url, reference, `warm-up ${r}`, 1))));
    await Promise.all(sims.map((s) => fetch(`${s.url}/history`, { method: 'POST', body: JSON.stringify({ clear: true }) })));
    const startedAt = Date.now();
    const start = performance.now();
    const posted = await Promise.all(
      Array.from({ length: TASKS }, async (_, t) => {
        const app = apps[t % REPLICAS]!;
        return { app, id: await postWorkloadTask(app.url, reference, t) };
      }),
    );
    await Promise.all(
      posted.map(({ app, id }) => untilCompleted(app, id)),
    );
    const ms = performance.now() - start;
    return { ms, startedAt, endedAt: Date.now(), workers: await Promise.all(sims.map((s) => workerTimeline(s.url))) };
  } finally {
    for (const app of apps) await app.close();
    await database.drop();
  }
}

/** The GPU-feed row for 3 replicas and 2 workers. */
export async function benchReplicaFeed(): Promise<BenchRow> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-replica-feed-'));
  const reference = await makeImage('png', 320, 240);
  const link = await linkNote();
  try {
    const idealRun = await withSimulators(WORKERS, dir, async (sims) => ({
      ...(await allQueuedAtOnce(sims, reference)),
      workers: await Promise.all(sims.map((s) => workerTimeline(s.url))),
    }));
    const serviceRun = await withSimulators(WORKERS, dir, (sims) => throughReplicas(sims, reference, dir));
    const ideal = idealRun.ms;
    const service = serviceRun.ms;
    const ends = headAndTail(serviceRun, serviceRun.workers);
    const idealEnds = headAndTail(idealRun, idealRun.workers);
    const idleOf = (list: WorkerTimeline[]) => list.reduce((n, w) => n + w.idleBetweenMs, 0).toFixed(0);
    return {
      name: `GPU feed: ${REPLICAS} replicas on PostgreSQL + Redis (${workloadLabel(WORKERS)})`,
      figure: `${(service / 1000).toFixed(2)} s`,
      baseline: `${(ideal / 1000).toFixed(2)} s all queued at once`,
      ratio: ideal / service,
      ratioLabel: 'utilization',
      note: `the slots of each server are counted in the database, so the next prompt waits in ComfyUI whichever replica submits it: the workers idled ${idleOf(serviceRun.workers)} ms in all between prompts (${idleOf(idealRun.workers)} ms with all queued at once; from their histories); what is left is at the ends: the first prompt started ${ends.head.toFixed(0)} ms after the posts began (upload, claim, submission; ${idealEnds.head.toFixed(0)} ms for the baseline's submission) and the last task completed ${ends.tail.toFixed(0)} ms after its last prompt (download, store, final frame over Redis; ${idealEnds.tail.toFixed(0)} ms for the baseline's result); images per worker ${serviceRun.workers.map((w) => w.prompts).join(' + ')}; ${link}`,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
