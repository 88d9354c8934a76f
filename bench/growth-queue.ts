/**
 * The queue's hot paths as it grows (QUEUE_POLICY=fair): `GET /api/task-status/{id}` of pending
 * tasks (each answer carries a queue position) and one claim, with 10 000 queued vs 100.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type autocannon from 'autocannon';
import { openDatabase } from '../src/db/database.js';
import { transitions } from '../src/tasks/transitions/index.js';
import { alternate, median } from './alternating.js';
import { insertBulkTasks } from './bulk-tasks.js';
import { requestRate } from './request-rate.js';
import { startReader } from './stored-tasks.js';
import type { BenchRow } from './table.js';

const BIG = 10_000;
const SMALL = 100;
const CLAIMS = 60;

/** A migrated SQLite file with `count` pending tasks (3 images each); returns its data folder and the ids. */
async function queued(dir: string, count: number): Promise<{ dataDir: string; ids: string[] }> {
  const dataDir = join(dir, `queue-${count}`);
  const file = join(dataDir, 'kontext.db');
  await (await openDatabase({ file })).destroy();
  return { dataDir, ids: insertBulkTasks(file, { count, status: 'pending' }) };
}

/** Median time of one claim (the claim transition, as the scheduler runs it) over CLAIMS claims, in ms. */
async function claimMs(file: string): Promise<number> {
  const db = await openDatabase({ file });
  try {
    const times: number[] = [];
    for (let i = 0; i < CLAIMS; i++) {
      const started = performance.now();
      const claimed = await transitions.claimTask(db, { instance: 'bench', leaseUntil: new Date(Date.now() + 60_000).toISOString(), maxProcessing: 1_000_000 });
      times.push(performance.now() - started);
      if (!claimed) throw new Error('growth queue: nothing to claim');
    }
    return median(times);
  } finally {
    await db.destroy();
  }
}

/** The queue rows: status reads of pending tasks and claims, 10 000 queued against 100. */
export async function benchGrowthQueue(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-growth-queue-'));
  try {
    const big = await queued(dir, BIG);
    const small = await queued(dir, SMALL);
    // The last 100 of the big queue: positions 9900-10 000, the far end of the order.
    const statusOf = (ids: string[]): autocannon.Request[] => ids.slice(-SMALL).map((id) => ({ method: 'GET', path: `/api/task-status/${id}` }));
    let status;
    {
      const bigApp = await startReader({ dataDir: big.dataDir }, () => {});
      const smallApp = await startReader({ dataDir: small.dataDir }, () => {});
      try {
        const rate = (url: string, requests: autocannon.Request[]) => (warm: boolean) => requestRate(url, requests, { connections: 10, durationS: 1.5, warmupS: warm ? 0 : 0.5 });
        status = await alternate(rate(bigApp.url, statusOf(big.ids)), rate(smallApp.url, statusOf(small.ids)));
      } finally {
        await bigApp.close();
        await smallApp.close();
      }
    }
    const bigClaim = await claimMs(join(big.dataDir, 'kontext.db'));
    const smallClaim = await claimMs(join(small.dataDir, 'kontext.db'));
    return [
      {
        name: `Growth: GET /api/task-status/{id} of pending tasks (queue position in fair order) with ${BIG.toLocaleString('en')} queued (6 alternating rounds of 1.5 s)`,
        figure: `${status.a.toFixed(0)} req/s (ratio per round ${status.spread[0].toFixed(2)}-${status.spread[1].toFixed(2)})`,
        baseline: `${status.b.toFixed(0)} req/s with ${SMALL} queued`,
        ratio: status.ratio,
        ratioLabel: `of the rate with ${SMALL} queued`,
        note: 'the fair order is kept per replica and read again when this replica enqueues, claims or cancels, or after 1 s (a full read of 10 000 pending rows: ~16 ms of SQLite, ~2 ms of ordering); other replicas change it within 1 s, which a position (advisory) may lag',
      },
      {
        name: `Growth: one claim (fair order) with ${BIG.toLocaleString('en')} queued (median of ${CLAIMS})`,
        figure: `${bigClaim.toFixed(2)} ms`,
        baseline: `${smallClaim.toFixed(2)} ms with ${SMALL} queued`,
        ratio: bigClaim / smallClaim,
        ratioLabel: `times the claim with ${SMALL} queued`,
        note: "the claim orders only each owner's oldest pending task (one row per owner) instead of every pending task; left: the distinct owners of the pending rows (a walk of tasks_queue, ~1.5 ms at 10 000)",
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
