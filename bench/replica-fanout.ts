/**
 * Fan-out over replicas: 1500 graphql-ws subscribers on one running task, first all on one replica
 * (the one running the task), then spread 500 each over 3 replicas. The replicas are child
 * processes on one PostgreSQL database and Redis (each has its own event loop, as in production);
 * frames reach every replica over Redis, including the one that publishes them. The delay of a
 * frame is from the simulator sending a step's `progress` to a subscriber receiving that step's
 * frame (bench/ws-frame-delays.ts and bench/progress-stamps.ts, as bench/fanout.ts measures it;
 * each task waits behind bench/blocker-prompt.ts while the subscribers connect). Both placements
 * run on the same three replicas in the same run, alternating, each on tasks of the same shape.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createKontextClient, type KontextClient } from '@kontext-gateway/sdk';
import type { Db } from '../src/db/database.js';
import { findTask } from '../src/db/tasks.js';
import { promptIdFor } from '../src/tasks/ids.js';
import { makeImage } from '../test/helpers/images.js';
import { startServiceProcess, type Child } from '../test/helpers/processes.js';
import { startBlocker, type Blocker } from './blocker-prompt.js';
import { generateTask } from './generate-task.js';
import { startStampingSimulator } from './progress-stamps.js';
import { createTestDatabase, REDIS_URL, urlOf } from './replica-servers.js';
import { percentile } from './stats.js';
import type { BenchRow } from './table.js';
import { delays, openAll, releaseAndWait, wsSubscriber, type Subscriber } from './ws-frame-delays.js';

const REPLICAS = 3;
const SUBSCRIBERS = 1500;
const STEPS = 40;
const STEP_MS = 100;
/** Measured tasks per placement. */
const ROUNDS = 2;

interface Measured {
  values: number[];
  folded: number;
  /** Share of the measured window the bench process's own event loop was busy (0-1). */
  clientBusy: number;
}

/** The delays of several tasks as one sample; the client's busy share averaged. */
function pool(runs: Measured[]): Measured {
  return {
    values: runs.flatMap((r) => r.values),
    folded: runs.reduce((n, r) => n + r.folded, 0),
    clientBusy: runs.reduce((n, r) => n + r.clientBusy, 0) / runs.length,
  };
}

/** Polls `check` every 50 ms until it returns a value; throws after `timeoutMs`. */
async function poll<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`replica fan-out: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The fan-out rows' measurements, both placements in one run. */
async function measure(dir: string): Promise<{ one: Measured; spread: Measured }> {
  const sim = await startStampingSimulator(dir, STEP_MS);
  const database = await createTestDatabase('postgres');
  const replicas: Child[] = [];
  let blocker: Blocker | undefined;
  let client: KontextClient | undefined;
  let db: Db | undefined;
  let subs: Subscriber[] = [];
  try {
    const instances = Array.from({ length: REPLICAS }, (_, r) => `bench-fanout-${r}`);
    // One after another: the first one migrates the database.
    for (const instance of instances) {
      replicas.push(await startServiceProcess({ DATA_DIR: join(dir, 'data'), COMFYUI_URL: sim.url, DATABASE_URL: urlOf(database.target), REDIS_URL, INSTANCE_ID: instance }));
    }
    db = await database.open();
    const wsUrls = replicas.map((r) => `${r.url.replace(/^http/, 'ws')}/graphql`);
    client = createKontextClient({ url: `${replicas[0]!.url}/graphql`, webSocketImpl: WebSocket });
    const kontext = client;
    const reference = await makeImage('png', 320, 240);
    // A warm-up task watched on every replica: their subscription paths are loaded and compiled before measuring.
    const warm = await generateTask(kontext, reference, 'replica fan-out', 2, 1);
    const watchers = await Promise.all(wsUrls.map((url) => wsSubscriber(url, warm)));
    await Promise.all(watchers.map((w) => w.done));
    for (const w of watchers) w.close();

    blocker = await startBlocker(sim.url, reference);
    const holder = blocker;

    /** One measured task; `placeOn(i, runner)` is the replica of the i-th subscriber. */
    const run = async (seed: number, placeOn: (i: number, runner: number) => number): Promise<Measured> => {
      const release = await holder.hold(seed);
      const measured = await generateTask(kontext, reference, 'replica fan-out', STEPS, seed);
      await sim.measure(promptIdFor(measured, 0));
      const claimedBy = await poll('the measured task to be claimed', async () => (await findTask(db!, measured))?.claimed_by ?? undefined);
      const runner = instances.indexOf(claimedBy);
      if (runner < 0) throw new Error(`replica fan-out: the task was claimed by ${claimedBy}, not a bench replica`);
      subs = await openAll(SUBSCRIBERS, (i) => wsSubscriber(wsUrls[placeOn(i, runner)]!, measured));

      const clientBusy = await releaseAndWait(subs, release, STEPS * STEP_MS + 30_000, 'replica fan-out');
      const sentAt = await sim.stamps();
      if (sentAt.size !== STEPS) throw new Error(`replica fan-out: saw ${sentAt.size} progress messages of the measured prompt, expected ${STEPS}`);
      const result = { ...delays(subs, sentAt), clientBusy };
      for (const s of subs) s.close();
      subs = [];
      return result;
    };
    // one, spread, spread, one: neither placement always gets the warmer (or the busier) machine.
    const ones: Measured[] = [];
    const spreads: Measured[] = [];
    let seed = 3;
    for (let round = 0; round < ROUNDS; round++) {
      const oneFirst = round % 2 === 0;
      for (const placement of oneFirst ? ['one', 'spread'] : ['spread', 'one']) {
        if (placement === 'one') ones.push(await run(seed++, (_, runner) => runner));
        else spreads.push(await run(seed++, (i) => i % REPLICAS));
      }
    }
    return { one: pool(ones), spread: pool(spreads) };
  } finally {
    for (const s of subs) s.close();
    await client?.close();
    await blocker?.stop();
    for (const r of replicas) await r.kill('SIGKILL');
    await sim.close();
    await database.drop();
  }
}

/** The fan-out row: frame delay p99 with the subscribers spread over 3 replicas vs all on one. */
export async function benchReplicaFanout(): Promise<BenchRow> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-replica-fanout-'));
  try {
    const { one, spread } = await measure(dir);
    const ms = (x: number) => `${x.toFixed(1)} ms`;
    const pair = (v: number[]) => `p50 ${ms(percentile(v, 50))}, p99 ${ms(percentile(v, 99))}`;
    const folded = (m: Measured) => ((100 * m.folded) / m.values.length).toFixed(1);
    return {
      name: `Fan-out over replicas: graphql-ws delay, simulator progress to frame (${STEPS} steps x ${STEP_MS} ms, ${SUBSCRIBERS} subscribers on one task, ${REPLICAS} replica processes on PostgreSQL + Redis, ${ROUNDS} tasks per placement, alternating)`,
      figure: `${pair(spread.values)}, ${SUBSCRIBERS / REPLICAS} subscribers on each replica`,
      baseline: `${pair(one.values)}, all ${SUBSCRIBERS} on the replica running the task`,
      ratio: percentile(spread.values, 99) / percentile(one.values, 99),
      ratioLabel: 'x the one-replica p99',
      note: `every frame goes through Redis to each replica with subscribers, which executes and serializes it once per subscriber: spread, three event loops share that work (on this machine's cores, with PostgreSQL, Redis and the bench process); steps folded into a later frame: ${folded(spread)}% spread, ${folded(one)}% on one; the subscribers share one bench process, its event loop ${(spread.clientBusy * 100).toFixed(0)}% / ${(one.clientBusy * 100).toFixed(0)}% busy`,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
