/**
 * Live progress fan-out: 1000 graphql-ws subscribers (the graphql-ws client, one socket each) and
 * 200 SSE subscribers on one running task. The delay of a frame is the time from the simulator (a
 * process of its own, as ComfyUI is) sending a `progress` message (observed with its
 * `onMessageSent` hook) to a subscriber receiving
 * the frame for that step. The service runs as a child process, so its RSS is its own: RSS per
 * subscriber is the growth from before the first subscriber to all of them subscribed, each
 * reading after a full garbage collection in the server (bench/collect-garbage.ts), as the baseline's.
 *
 * The baseline is a bare `ws` server in a child process broadcasting frames of the same size to
 * 1000 sockets at the same pace, each frame stamped with its send time. Both sides' ws subscribers
 * parse each message once with a bare socket (bench/ws-frame-delays.ts), so the bench process does
 * the same work per message for either. Times on both sides are the machine's monotonic clock
 * (bench/ws-frame-delays.ts's `clockNow()`), which every process on it reads alike.
 *
 * The parts the replica fan-out shares live apart: the subscribers and delays
 * (bench/ws-frame-delays.ts, bench/sse-subscriber.ts), the simulator's stamps
 * (bench/progress-stamps.ts), the prompt that holds it (bench/blocker-prompt.ts) and the baseline
 * (bench/bare-ws-broadcast.ts).
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
import { alternateRounds, medianRound, type Round } from './alternating.js';
import { bareBroadcast, type BroadcastResult } from './bare-ws-broadcast.js';
import { startBlocker, type Blocker } from './blocker-prompt.js';
import { collectable } from './collect-garbage.js';
import { generateTask } from './generate-task.js';
import { startStampingSimulator } from './progress-stamps.js';
import { measuredWindow, profiledEnv, stopSignal } from './service-profile.js';
import { sseSubscriber } from './sse-subscriber.js';
import { percentile } from './stats.js';
import type { BenchRow } from './table.js';
import { delays, openAll, releaseAndWait, wsSubscriber, type Subscriber } from './ws-frame-delays.js';

const WS_SUBSCRIBERS = 1000;
const SSE_SUBSCRIBERS = 200;
// The API's most. Every frame reaches 1000 subscribers, so the top 1% of 40 frames' delays all came
// from the worst frame: one machine hiccup decided a round (rounds 1.18-2.69 in one run).
const STEPS = 100;
const STEP_MS = 100;

/**
 * The median over steps of the time from the first subscriber receiving a step's own frame to the
 * last one receiving it: how long one frame takes to reach everyone.
 */
function spread(subs: Subscriber[]): number {
  const byStep = new Map<number, { first: number; last: number }>();
  for (const s of subs) {
    for (const [step, at] of s.frames) {
      if (step <= 0 || !Number.isFinite(step)) continue;
      const seen = byStep.get(step);
      if (!seen) byStep.set(step, { first: at, last: at });
      else if (at < seen.first) seen.first = at;
      else if (at > seen.last) seen.last = at;
    }
  }
  return percentile([...byStep.values()].map((v) => v.last - v.first), 50);
}

interface ServiceResult {
  ws: { values: number[]; folded: number };
  sse: { values: number[]; folded: number };
  rssPerSubscriber: number;
  /** Median time one step frame takes to reach every subscriber, ms. */
  spread: number;
  /** Share of the measured window the bench process's own event loop was busy (0-1). */
  clientBusy: number;
  /** A `next` message as graphql-ws clients receive it, for the baseline to send. */
  sampleFrame: string;
}

/** The measured task through the service process, with every subscriber on it. */
async function throughService(dir: string): Promise<ServiceResult> {
  const sim = await startStampingSimulator(dir, STEP_MS);
  let blocker: Blocker | undefined;
  let service: Child | undefined;
  let subs: Subscriber[] = [];
  let client: KontextClient | undefined;
  // Memory is read after a full collection in the service, as in the baseline's server (bench/collect-garbage.ts).
  const gc = collectable(profiledEnv());
  try {
    // FANOUT_PROFILE_DIR=<dir>: a CPU profile of the service and its measured window (bench/service-profile.ts).
    service = await startServiceProcess({ DATA_DIR: join(dir, 'data'), COMFYUI_URL: sim.url, ...gc.env });
    const pid = service.process.pid!;
    client = createKontextClient({ url: `${service.url}/graphql`, webSocketImpl: WebSocket });
    const reference = await makeImage('png', 320, 240);
    // A warm-up task, start to finish: the service's code paths are loaded and compiled before measuring.
    for await (const f of client.watch(await generateTask(client, reference, 'fan-out', 2, 1))) if (f.status !== 'PENDING' && f.status !== 'PROCESSING') break;

    blocker = await startBlocker(sim.url, reference);
    const release = await blocker.hold(2);
    const measured = await generateTask(client, reference, 'fan-out', STEPS, 3);
    await sim.measure(promptIdFor(measured, 0));

    const before = await gc.rss(pid);
    const graphqlUrl = `${service.url}/graphql`;
    const wsUrl = graphqlUrl.replace(/^http/, 'ws');
    let sampleFrame = '';
    const wsSubs = await openAll(WS_SUBSCRIBERS, () =>
      wsSubscriber(wsUrl, measured, (data) => (sampleFrame ||= JSON.stringify({ id: randomUUID(), type: 'next', payload: { data } }))),
    );
    const sseSubs = await openAll(SSE_SUBSCRIBERS, () => sseSubscriber(graphqlUrl, measured));
    subs = [...wsSubs, ...sseSubs];
    const after = await gc.rss(pid);

    const clientBusy = await measuredWindow(pid, () => releaseAndWait(subs, release, STEPS * STEP_MS + 30_000, 'fan-out'));
    const sentAt = await sim.stamps();
    if (sentAt.size !== STEPS) throw new Error(`fan-out: saw ${sentAt.size} progress messages of the measured prompt, expected ${STEPS}`);
    return {
      ws: delays(wsSubs, sentAt),
      sse: delays(sseSubs, sentAt),
      rssPerSubscriber: (after - before) / subs.length,
      spread: spread(subs),
      clientBusy,
      sampleFrame,
    };
  } finally {
    for (const s of subs) s.close();
    await client?.close();
    await blocker?.stop();
    await service?.kill(stopSignal());
    await sim.close();
    await gc.dispose();
  }
}

/** Rounds of service and baseline, alternating which goes first. @default 5 (FANOUT_ROUNDS) */
const ROUNDS = Math.max(1, Number(process.env['FANOUT_ROUNDS'] ?? 5));

/** The fan-out rows: graphql-ws and SSE delay and RSS per subscriber, against the bare ws broadcast, in alternating rounds. */
export async function benchFanout(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-fanout-'));
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
      () => bareBroadcast({ sampleFrame, sockets: WS_SUBSCRIBERS, steps: STEPS, stepMs: STEP_MS }),
    );
    const ms = (x: number) => `${x.toFixed(1)} ms`;
    const pair = (v: number[]) => `p50 ${ms(percentile(v, 50))}, p99 ${ms(percentile(v, 99))}`;
    const folded = (d: { folded: number }, n: number) =>
      d.folded ? `; ${((100 * d.folded) / (n * STEPS)).toFixed(1)}% of the steps came folded into a later frame` : '';
    const basePair = (bare: BroadcastResult) => `bare ws broadcast to ${WS_SUBSCRIBERS} sockets: ${pair(bare.delays)}`;
    const load = `${STEPS} steps x ${STEP_MS} ms, ${WS_SUBSCRIBERS} graphql-ws + ${SSE_SUBSCRIBERS} SSE subscribers on one task`;
    const clientNote = ({ svc, bare }: Round<ServiceResult, BroadcastResult>) =>
      `the subscribers share one bench process, its event loop ${(svc.clientBusy * 100).toFixed(0)}% busy during the task (${(bare.clientBusy * 100).toFixed(0)}% for the baseline)`;
    const median = `median of ${ROUNDS} alternating rounds`;
    const ws = medianRound(rounds, ({ svc, bare }) => percentile(svc.ws.values, 99) / percentile(bare.delays, 99));
    const sse = medianRound(rounds, ({ svc, bare }) => percentile(svc.sse.values, 99) / percentile(bare.delays, 99));
    const rss = medianRound(rounds, ({ svc, bare }) => svc.rssPerSubscriber / bare.rssPerSocket);
    return [
      {
        name: `Fan-out: graphql-ws delay, simulator progress to frame (${load})`,
        figure: pair(ws.round.svc.ws.values),
        baseline: basePair(ws.round.bare),
        ratio: ws.ratio,
        ratioLabel: `x the baseline p99 delay, ${median} (the goal: <= 1.5)`,
        note: `${ws.spread}; each frame is persisted (SQLite), published once per task (one bus subscription per task, task-watch-hub.ts), executed and serialised once for all (one operation, one caller; one envelope per group, ws-shared-subscriptions.ts), then written straight to each socket (its message spliced from the shared payload, direct-subscriber.ts): one frame takes ${ms(ws.round.svc.spread)} to reach all ${WS_SUBSCRIBERS + SSE_SUBSCRIBERS}, mostly ws' socket writes, as for the baseline; p50 ${(percentile(ws.round.svc.ws.values, 50) / percentile(ws.round.bare.delays, 50)).toFixed(2)}x the baseline's${folded(ws.round.svc.ws, WS_SUBSCRIBERS)}; ${clientNote(ws.round)}`,
      },
      {
        name: `Fan-out: SSE delay, simulator progress to frame (${load})`,
        figure: pair(sse.round.svc.sse.values),
        baseline: basePair(sse.round.bare),
        ratio: sse.ratio,
        ratioLabel: `x the baseline p99 delay, ${median} (the goal: <= 1.5)`,
        note: `${sse.spread}; as graphql-ws, each event's bytes written straight to the Node response (direct-sse.ts, which consumes the watch itself: nothing of Yoga's request is held); each frame goes to the kind of subscribers with fewer members first (task-watch-hub.ts): the ${SSE_SUBSCRIBERS} SSE streams, then the ${WS_SUBSCRIBERS} sockets, which wait for those writes; p50 ${(percentile(sse.round.svc.sse.values, 50) / percentile(sse.round.bare.delays, 50)).toFixed(2)}x the baseline's${folded(sse.round.svc.sse, SSE_SUBSCRIBERS)}; ${clientNote(sse.round)}`,
      },
      {
        name: `Fan-out: service RSS per subscriber (${WS_SUBSCRIBERS + SSE_SUBSCRIBERS} subscribers)`,
        figure: `${(rss.round.svc.rssPerSubscriber / 1024).toFixed(1)} KB`,
        baseline: `${(rss.round.bare.rssPerSocket / 1024).toFixed(1)} KB per socket, bare ws server`,
        ratio: rss.ratio,
        ratioLabel: `x the baseline, ${median}`,
        note: `${rss.spread}; RSS growth from before the first subscriber to all subscribed, each read after a full collection in the server (bench/collect-garbage.ts), as the baseline's`,
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
