/**
 * Fan-out at scale: 10 000 graphql-ws subscribers spread over 100 tasks (100 each, one socket per
 * subscriber), against a bare `ws` server holding 10 000 sockets in 100 rooms. Memory: the service's
 * RSS growth per subscriber (every one subscribed, each with its own snapshot) against the bare
 * server's per socket. Delay: the first task runs while all 10 000 are held, its 100 subscribers
 * receive its frames (simulator progress to frame, as bench/fanout.ts measures it); the bare server
 * broadcasts frames of the same size at the same pace to the 100 sockets of one room.
 *
 * On a 2-vCPU machine the delay is as much the scheduler's as the service's. `perf sched record -a`
 * over one round (10 s windows): the service's main thread waited runnable 178 ms (146 waits over
 * 0.5 ms), 152 ms of it behind this process on the same vCPU while the other vCPU was idle, and
 * this process waited 326 ms behind the service likewise; the bare server never waited, only this
 * process behind it (122 ms). The longer a frame's burst (the simulator's message, the SQL, then
 * 100 writes), the more of it shares one vCPU with its readers; so cost per subscriber counts twice.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createKontextClient, type KontextClient } from '@kontext-gateway/sdk';
import { promptIdFor } from '../src/tasks/ids.js';
import { makeImage } from '../test/helpers/images.js';
import { startServiceProcess, type Child } from '../test/helpers/processes.js';
import { alternateRounds, medianRound } from './alternating.js';
import { bareBroadcast } from './bare-ws-broadcast.js';
import { startBlocker, type Blocker } from './blocker-prompt.js';
import { collectable } from './collect-garbage.js';
import { generateTask } from './generate-task.js';
import { startStampingSimulator } from './progress-stamps.js';
import { measuredWindow, profiledEnv, stopSignal } from './service-profile.js';
import { percentile } from './stats.js';
import type { BenchRow } from './table.js';
import { delays, openAll, releaseAndWait, wsSubscriber, type Subscriber } from './ws-frame-delays.js';

const TASKS = 100;
const PER_TASK = 100;
// The API's most: with 20 steps to 100 subscribers, one late frame was 5% of the delays and set p99 alone.
const STEPS = 100;
const STEP_MS = 100;
/** Rounds of service and baseline, alternating which goes first. @default 5 (FANOUT_ROUNDS) */
const ROUNDS = Math.max(1, Number(process.env['FANOUT_ROUNDS'] ?? 5));

interface ServiceResult {
  values: number[];
  rssPerSubscriber: number;
  clientBusy: number;
  sampleFrame: string;
}

async function throughService(dir: string): Promise<ServiceResult> {
  const sim = await startStampingSimulator(dir, STEP_MS);
  let blocker: Blocker | undefined;
  let service: Child | undefined;
  let subs: Subscriber[] = [];
  let client: KontextClient | undefined;
  // Memory is read after a full collection in the service, as in the baseline's server (bench/collect-garbage.ts).
  const gc = collectable(profiledEnv());
  try {
    // Room for every subscriber besides the bench's own client (MAX_LIVE_CONNECTIONS is 10 000 by default).
    service = await startServiceProcess({ DATA_DIR: join(dir, 'data'), COMFYUI_URL: sim.url, MAX_LIVE_CONNECTIONS: String(TASKS * PER_TASK + 100), ...gc.env });
    const pid = service.process.pid!;
    client = createKontextClient({ url: `${service.url}/graphql`, webSocketImpl: WebSocket });
    const reference = await makeImage('png', 320, 240);
    for await (const f of client.watch(await generateTask(client, reference, 'fan-out warm-up', 2, 1))) if (f.status !== 'PENDING' && f.status !== 'PROCESSING') break;

    blocker = await startBlocker(sim.url, reference);
    const release = await blocker.hold(2);
    // The first task runs first once the blocker goes; the others wait in the queue with their subscribers.
    const tasks: string[] = [];
    for (let i = 0; i < TASKS; i++) tasks.push(await generateTask(client, reference, `fan-out ${i}`, STEPS, 3 + i));
    await sim.measure(promptIdFor(tasks[0]!, 0));

    const before = await gc.rss(pid);
    const wsUrl = `${service.url}/graphql`.replace(/^http/, 'ws');
    let sampleFrame = '';
    // Subscriber i watches task i % TASKS, so the measured task's subscribers are spread over the connecting.
    const all = await openAll(TASKS * PER_TASK, (i) =>
      wsSubscriber(wsUrl, tasks[i % TASKS]!, (data) => (sampleFrame ||= JSON.stringify({ id: randomUUID(), type: 'next', payload: { data } }))),
    );
    subs = all;
    const after = await gc.rss(pid);
    const measured = all.filter((_, i) => i % TASKS === 0);
    const clientBusy = await measuredWindow(pid, () => releaseAndWait(measured, release, STEPS * STEP_MS + 60_000, 'fan-out over many tasks'));
    const sentAt = await sim.stamps();
    if (sentAt.size !== STEPS) throw new Error(`fan-out over many tasks: saw ${sentAt.size} progress messages of the measured prompt, expected ${STEPS}`);
    return { values: delays(measured, sentAt).values, rssPerSubscriber: (after - before) / all.length, clientBusy, sampleFrame };
  } finally {
    for (const s of subs) s.close();
    await client?.close();
    await blocker?.stop();
    await service?.kill(stopSignal());
    await sim.close();
    await gc.dispose();
  }
}

/** The 10 000-subscriber rows: delay p99 and RSS per subscriber, against the bare ws server with 100 rooms. */
export async function benchFanoutManyTasks(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-fanout-many-'));
  try {
    // The baseline sends frames of the service's size: alternateRounds starts with the service.
    let sampleFrame = '';
    const rounds = await alternateRounds(
      ROUNDS,
      async (r) => {
        const sub = join(dir, String(r));
        await mkdir(sub, { recursive: true });
        const svc = await throughService(sub);
        sampleFrame ||= svc.sampleFrame;
        return svc;
      },
      () => bareBroadcast({ sampleFrame, sockets: TASKS * PER_TASK, steps: STEPS, stepMs: STEP_MS, rooms: TASKS }),
    );
    const ms = (x: number) => `${x.toFixed(1)} ms`;
    const pair = (v: number[]) => `p50 ${ms(percentile(v, 50))}, p99 ${ms(percentile(v, 99))}`;
    const load = `${TASKS * PER_TASK} graphql-ws subscribers over ${TASKS} tasks, ${STEPS} steps x ${STEP_MS} ms of one running task`;
    const delay = medianRound(rounds, ({ svc, bare }) => percentile(svc.values, 99) / percentile(bare.delays, 99));
    const rss = medianRound(rounds, ({ svc, bare }) => svc.rssPerSubscriber / bare.rssPerSocket);
    const median = `median of ${ROUNDS} alternating rounds`;
    return [
      {
        name: `Fan-out at scale: graphql-ws delay (${load})`,
        figure: pair(delay.round.svc.values),
        baseline: `bare ws, ${TASKS * PER_TASK} sockets in ${TASKS} rooms, one room's ${PER_TASK} sent to: ${pair(delay.round.bare.delays)}`,
        ratio: delay.ratio,
        ratioLabel: `x the baseline p99 delay, ${median} (the goal: <= 1.5)`,
        note: `${delay.spread}; a task's frames go to its own watchers only (one bus subscription and one watcher set per task, task-watch-hub.ts); the bench process's event loop ${(delay.round.svc.clientBusy * 100).toFixed(0)}% busy (${(delay.round.bare.clientBusy * 100).toFixed(0)}% for the baseline)`,
      },
      {
        name: `Fan-out at scale: service RSS per subscriber (${TASKS * PER_TASK} over ${TASKS} tasks)`,
        figure: `${(rss.round.svc.rssPerSubscriber / 1024).toFixed(1)} KB`,
        baseline: `${(rss.round.bare.rssPerSocket / 1024).toFixed(1)} KB per socket, bare ws server with rooms`,
        ratio: rss.ratio,
        ratioLabel: `x the baseline, ${median} (the goal: <= 1.5)`,
        note: `${rss.spread}; per subscriber: its socket and graphql-ws connection, its record in its group (ws-shared-subscriptions.ts: one envelope per group), its TaskWatch and DirectSubscriber; RSS growth read after a full collection in the server, as the baseline's (bench/collect-garbage.ts)`,
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
