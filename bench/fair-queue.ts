/**
 * Fair queue: how long key B's single task waits behind 200 queued tasks of key A, with
 * QUEUE_POLICY=fair against fifo (today's order), side by side in one run. One simulator, one task
 * at a time (MAX_CONCURRENT_TASKS=1: one slot), every task one image of a fixed step time. The goal
 * is a fair wait of at most one image time per slot: B waits only for the task of A that runs.
 * The image time is measured in the same run: the median time between two consecutive starts
 * (the image, its download and the claim of the next task).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSimulator } from '../simulator/server.js';
import { startApp } from '../src/app.js';
import { callerOfKey } from '../src/auth/caller.js';
import { createApiKey } from '../src/auth/create-api-key.js';
import { loadConfig } from '../src/config.js';
import type { Db } from '../src/db/database.js';
import { findTask } from '../src/db/tasks.js';
import type { QueuePolicy } from '../src/tasks/fair-order.js';
import type { GenerateParams } from '../src/tasks/generate-params.js';
import { makeImage } from '../test/helpers/images.js';
import { percentile } from './stats.js';
import type { BenchRow } from './table.js';

const QUEUED = 200;
const STEPS = 20;
const STEP_MS = 5;
/** When B's single task arrives in the fair run, as a fraction of an image time after a task of A started; fifo's one takes 200 slots. */
const FAIR_PHASES = [0, 0.25, 0.5, 0.75, 0.9];

const params: GenerateParams = { description: 'fair queue benchmark', count: 1, size: '256x256', steps: STEPS, guidance: 2.5, seed: undefined, idempotencyKey: undefined };

/** Start times of the tasks started so far, ms, in order. */
async function starts(db: Db): Promise<number[]> {
  const rows = await db.selectFrom('tasks').select('started_at').where('started_at', 'is not', null).orderBy('started_at').execute();
  return rows.map((r) => Date.parse(r.started_at!));
}

/** Waits until at least `n` tasks have started. */
async function startedAtLeast(db: Db, n: number): Promise<void> {
  while ((await starts(db)).length < n) await sleep(10);
}

/** Median time between consecutive starts: how long a task holds the one slot (the image time per slot). */
function slotTime(times: number[]): number {
  return percentile(times.slice(1).map((t, i) => t - times[i]!), 50);
}

/**
 * Queues 200 tasks of A; once the queue is settled (two of them started) queues one task of B and
 * measures its wait from creation to start, once per phase: B arrives that fraction of an image
 * time after a task of A started (each time after one more of A started, so B was served last).
 * The image time is the median gap between starts once the 200 are queued.
 */
async function waitsOfB(policy: QueuePolicy, phases: readonly number[], dir: string, reference: Buffer): Promise<{ waitsMs: number[]; slotMs: number }> {
  const sim = await startSimulator({ port: 0, stepMs: STEP_MS, baseDir: join(dir, `sim-${policy}`) });
  const config = { ...loadConfig({}), host: '127.0.0.1', port: 0, dataDir: join(dir, `svc-${policy}`), comfyuiUrls: [sim.url], maxConcurrentTasks: 1, queuePolicy: policy };
  const app = await startApp(config, { engine: { tickMs: 100 } });
  try {
    const upload = await app.service.storeReference(Readable.from(reference));
    const a = callerOfKey((await createApiKey(app.db, { name: 'A' })).row);
    const b = callerOfKey((await createApiKey(app.db, { name: 'B' })).row);
    for (let i = 0; i < QUEUED; i++) await app.service.createTask(params, upload, a);
    // Starts while the 200 were being queued ran slower: not counted in the image time.
    const settled = (await starts(app.db)).length + 1;
    await startedAtLeast(app.db, settled + 2);
    const waitsMs: number[] = [];
    for (const phase of phases) {
      const before = (await starts(app.db)).length;
      await startedAtLeast(app.db, before + 1);
      await sleep(phase * slotTime((await starts(app.db)).slice(settled)));
      const { task } = await app.service.createTask(params, upload, b);
      for await (const frame of (await app.service.watch(task.id, b))!) if (frame.status !== 'pending') break;
      const row = (await findTask(app.db, task.id))!;
      waitsMs.push(Date.parse(row.started_at!) - Date.parse(row.created_at));
    }
    return { waitsMs, slotMs: slotTime((await starts(app.db)).slice(settled)) };
  } finally {
    await app.close();
    await sim.close();
  }
}

export async function benchFairQueue(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-fair-'));
  try {
    const reference = await makeImage('png', 320, 240);
    const fair = await waitsOfB('fair', FAIR_PHASES, dir, reference);
    const fifo = await waitsOfB('fifo', [0], dir, reference);
    const fairMedian = percentile(fair.waitsMs, 50);
    const fairMax = Math.max(...fair.waitsMs);
    const fifoWait = fifo.waitsMs[0]!;
    const slots = (ms: number, slot: number) => (ms / slot).toFixed(2);
    return [
      {
        name: `Fair queue: wait of key B's 1 task behind ${QUEUED} of key A (1 worker, 1 slot, ${STEPS} steps x ${STEP_MS} ms)`,
        figure: `fair: median ${fairMedian} ms, max ${fairMax} ms of ${FAIR_PHASES.length} arrivals (${slots(fairMedian, fair.slotMs)} / ${slots(fairMax, fair.slotMs)} image times of ${fair.slotMs} ms)`,
        baseline: `fifo: ${(fifoWait / 1000).toFixed(2)} s (${slots(fifoWait, fifo.slotMs)} image times of ${fifo.slotMs} ms)`,
        ratio: fifoWait / fairMedian,
        ratioLabel: 'x shorter',
        note: 'B waits only for the task of A that runs (goal: at most one image time per slot); fifo waits for every queued one',
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
