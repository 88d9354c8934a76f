/**
 * Live progress fan-out: 1000 graphql-ws subscribers (the graphql-ws client, one socket each) and
 * 200 SSE subscribers on one running task. The delay of a frame is the time from the simulator
 * sending a `progress` message (observed with its `onMessageSent` hook) to a subscriber receiving
 * the frame for that step. The service runs as a child process, so its RSS is its own: RSS per
 * subscriber is the growth from before the first subscriber to all of them subscribed.
 *
 * The baseline is a bare `ws` server in a child process broadcasting frames of the same size to
 * 1000 sockets at the same pace, each frame stamped with its send time. Times on both sides are
 * `performance.timeOrigin + performance.now()`, which is wall-clock based and so comparable
 * across processes on one machine.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance as eventLoop } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createClient, type Client as GraphQLWsClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startSimulator } from '../simulator/server.js';
import { ComfyWorker } from '../src/comfyui/worker.js';
import { bindWorkflow, loadWorkflow } from '../src/comfyui/workflow.js';
import { createKontextClient, type KontextClient } from '../src/sdk/client.js';
import { promptIdFor } from '../src/tasks/ids.js';
import { makeImage } from '../test/helpers/images.js';
import { startServiceProcess, type Child } from '../test/helpers/processes.js';
import { percentile } from './stats.js';
import type { BenchRow } from './table.js';

const WS_SUBSCRIBERS = 1000;
const SSE_SUBSCRIBERS = 200;
const STEPS = 40;
const STEP_MS = 100;
/** Connections opened at once while subscribing. */
const CONNECT_BATCH = 100;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const SUBSCRIPTION = /* GraphQL */ `subscription Watch($taskId: ID!) {
  taskProgress(taskId: $taskId) { taskId seq status progress imageIndex step totalSteps node queuePosition etaSeconds preview error image { index url } }
}`;

interface FrameData {
  status: string;
  step: number | null;
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
const wallNow = (): number => performance.timeOrigin + performance.now();

/** Resident memory of a process, in bytes (Linux). */
async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/** One subscriber's view: the step of each frame it received, in order, and when. */
interface Subscriber {
  /** [step, receive time]; the final frame counts as every step. */
  frames: [number, number][];
  done: Promise<void>;
  close(): void;
}

/** Records received frames; `done` resolves at the final one. */
function recorder(): { frames: [number, number][]; onFrame: (f: FrameData, at: number) => void; done: Promise<void> } {
  const frames: [number, number][] = [];
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    frames,
    done,
    onFrame(f, at) {
      if (f.status === 'PROCESSING' && f.step !== null) frames.push([f.step, at]);
      if (f.status !== 'PENDING' && f.status !== 'PROCESSING') {
        frames.push([Number.POSITIVE_INFINITY, at]);
        finish();
      }
    },
  };
}

/** A graphql-ws subscriber (its own socket); resolves once the first frame (the snapshot) arrived. */
async function wsSubscriber(url: string, taskId: string, onFirst: (data: unknown) => void): Promise<Subscriber> {
  const rec = recorder();
  let client: GraphQLWsClient | undefined;
  const first = new Promise<void>((resolve, reject) => {
    client = createClient({ url, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0, onNonLazyError: reject });
    let got = false;
    client.subscribe<{ taskProgress: FrameData }>(
      { query: SUBSCRIPTION, variables: { taskId } },
      {
        next: (result) => {
          const at = wallNow();
          const frame = result.data?.taskProgress;
          if (!frame) return reject(new Error(`subscription error: ${JSON.stringify(result.errors)}`));
          if (!got) {
            got = true;
            onFirst(result.data);
            resolve();
          }
          rec.onFrame(frame, at);
        },
        error: reject,
        complete: () => undefined,
      },
    );
  });
  await first;
  return { frames: rec.frames, done: rec.done, close: () => void client?.dispose() };
}

/**
 * An SSE subscriber: a POST with `accept: text/event-stream`, read with node:http (lighter on the
 * bench process than fetch's web streams); resolves once the first frame arrived.
 */
async function sseSubscriber(url: string, taskId: string): Promise<Subscriber> {
  const rec = recorder();
  const body = JSON.stringify({ query: SUBSCRIPTION, variables: { taskId } });
  let req: ClientRequest | undefined;
  await new Promise<void>((resolve, reject) => {
    req = httpRequest(url, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'content-length': Buffer.byteLength(body) },
    });
    req.once('error', reject);
    req.once('response', (res) => {
      if (res.statusCode !== 200) return reject(new Error(`SSE subscribe: HTTP ${res.statusCode}`));
      res.setEncoding('utf8');
      let buffer = '';
      res.on('data', (chunk: string) => {
        const at = wallNow();
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!/^event: next$/m.test(event)) continue;
          const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
          const frame = (JSON.parse(data) as { data?: { taskProgress?: FrameData } }).data?.taskProgress;
          if (!frame) continue;
          resolve();
          rec.onFrame(frame, at);
        }
      });
      res.on('error', () => undefined); // destroyed by close()
    });
    req.end(body);
  });
  return { frames: rec.frames, done: rec.done, close: () => void req?.destroy() };
}

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

/** Opens `n` subscribers, `CONNECT_BATCH` at a time. */
async function openAll<T>(n: number, open: () => Promise<T>): Promise<T[]> {
  const all: T[] = [];
  for (let i = 0; i < n; i += CONNECT_BATCH) all.push(...(await Promise.all(Array.from({ length: Math.min(CONNECT_BATCH, n - i) }, open))));
  return all;
}

/**
 * Delays (ms): for every subscriber and every step, from the simulator sending that step's
 * `progress` to the subscriber's first frame at that step or later (a frame is absolute, so a
 * busy service may fold a step into the next frame: the wait for it still counts). `folded`
 * counts the (subscriber, step) pairs that never had a frame of their own.
 */
function delays(subs: Subscriber[], sentAt: Map<number, number>): { values: number[]; folded: number } {
  const values: number[] = [];
  let folded = 0;
  for (const s of subs) {
    let i = 0;
    for (const [step, sent] of [...sentAt].sort((a, b) => a[0] - b[0])) {
      while (i < s.frames.length && s.frames[i]![0] < step) i++;
      const frame = s.frames[i];
      if (!frame) throw new Error(`fan-out: a subscriber never saw step ${step}`);
      if (frame[0] !== step) folded++;
      values.push(frame[1] - sent);
    }
  }
  return { values, folded };
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

async function throughService(dir: string): Promise<ServiceResult> {
  // step -> when the simulator sent `progress` for it, for the measured task's prompt only.
  let measuredPrompt = '';
  const sentAt = new Map<number, number>();
  const sim = await startSimulator({
    port: 0,
    stepMs: STEP_MS,
    baseDir: join(dir, 'comfyui'),
    onMessageSent: (text) => {
      if (!text.startsWith('{"type": "progress"')) return;
      const at = wallNow();
      const { data } = JSON.parse(text) as { data: { value: number; prompt_id: string } };
      if (data.prompt_id === measuredPrompt && !sentAt.has(data.value)) sentAt.set(data.value, at);
    },
  });
  const blocker = new ComfyWorker(sim.url);
  const blockerPrompt = randomUUID();
  let service: Child | undefined;
  let subs: Subscriber[] = [];
  let client: KontextClient | undefined;
  try {
    service = await startServiceProcess({ DATA_DIR: join(dir, 'data'), COMFYUI_URL: sim.url });
    const pid = service.process.pid!;
    client = createKontextClient({ url: `${service.url}/graphql`, webSocketImpl: WebSocket });
    const kontext = client;
    const reference = await makeImage('png', 320, 240);
    const generate = async (steps: number, seed: number): Promise<string> => {
      const r = await kontext.generate({ referenceImage: reference, fileName: 'ref.png', description: 'fan-out', size: '256x256', steps, seed });
      if (r.__typename !== 'GenerateSuccess') throw new Error(`generate: ${r.message}`);
      return r.task.id;
    };
    // A warm-up task, start to finish: the service's code paths are loaded and compiled before measuring.
    for await (const f of client.watch(await generate(2, 1))) if (f.status !== 'PENDING' && f.status !== 'PROCESSING') break;

    // A long prompt put straight into the simulator holds it while the subscribers connect; the
    // measured task waits behind it in ComfyUI's queue.
    const workflow = await loadWorkflow();
    await blocker.start();
    const uploaded = await blocker.uploadImage(reference, 'bench-blocker.png', { overwrite: true });
    let blockerStarted!: () => void;
    const started = new Promise<void>((resolve) => (blockerStarted = resolve));
    const blocked = blocker.run(
      blockerPrompt,
      bindWorkflow(workflow, { description: 'blocker', seed: 2, steps: 10_000, guidance: 2.5, size: { width: 256, height: 256 }, referenceImage: uploaded.name, filenamePrefix: 'bench/blocker' }),
      { outputNode: workflow.binding.outputNode, onEvent: (e) => e.type === 'progress' && blockerStarted() },
    );
    await Promise.race([started, blocked]); // a rejected blocker ends the wait with its error
    const measured = await generate(STEPS, 3);
    measuredPrompt = promptIdFor(measured, 0);

    const before = await rss(pid);
    const graphqlUrl = `${service.url}/graphql`;
    const wsUrl = graphqlUrl.replace(/^http/, 'ws');
    let sampleFrame = '';
    const wsSubs = await openAll(WS_SUBSCRIBERS, () =>
      wsSubscriber(wsUrl, measured, (data) => (sampleFrame ||= JSON.stringify({ id: randomUUID(), type: 'next', payload: { data } }))),
    );
    const sseSubs = await openAll(SSE_SUBSCRIBERS, () => sseSubscriber(graphqlUrl, measured));
    subs = [...wsSubs, ...sseSubs];
    const after = await rss(pid);

    // Release the measured task and wait for every subscriber's final frame.
    const busyFrom = eventLoop.eventLoopUtilization();
    await blocker.cancel(blockerPrompt);
    await blocked.catch(() => undefined); // ComfyInterruptedError
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('fan-out: subscribers did not all see the final frame')), STEPS * STEP_MS + 30_000).unref());
    await Promise.race([Promise.all(subs.map((s) => s.done)), timeout]);
    const clientBusy = eventLoop.eventLoopUtilization(busyFrom).utilization;
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
    await blocker.stop();
    await service?.kill('SIGKILL');
    await sim.close();
  }
}

interface BaselineResult {
  /** Send-to-receive times of every frame at every socket, ms. */
  delays: number[];
  /** Share of the broadcast the bench process's event loop was busy (0-1). */
  clientBusy: number;
  rssPerSocket: number;
}

/** A bare `ws` broadcast of `STEPS` frames like `sampleFrame`, one every `STEP_MS`, to `WS_SUBSCRIBERS` sockets. */
async function bareBroadcast(sampleFrame: string): Promise<BaselineResult> {
  // CommonJS in a child: `ws` resolves from the repository's node_modules (the working directory).
  const code = `
    const { WebSocketServer } = require('ws');
    const frame = JSON.parse(process.env.FRAME);
    const steps = Number(process.env.STEPS), stepMs = Number(process.env.STEP_MS);
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 }, () => console.log('bare ws listening on ws://127.0.0.1:' + wss.address().port));
    process.stdin.once('data', () => {
      let step = 0;
      const tick = () => {
        step++;
        const progress = frame.payload.data.taskProgress;
        progress.step = step;
        progress.sentAt = performance.timeOrigin + performance.now();
        const text = JSON.stringify(frame);
        for (const ws of wss.clients) ws.send(text);
        if (step < steps) setTimeout(tick, stepMs);
      };
      tick();
    });`;
  const child = spawn(process.execPath, ['-e', code], {
    cwd: ROOT,
    env: { ...process.env, FRAME: sampleFrame, STEPS: String(STEPS), STEP_MS: String(STEP_MS) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const sockets: WebSocket[] = [];
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the bare ws server exited with ${code}`)));
      child.stdout.on('data', (c: Buffer) => {
        const m = /listening on (\S+)/.exec(c.toString());
        if (m) resolve(m[1]!);
      });
    });
    const before = await rss(child.pid!);
    const received: number[] = [];
    let remaining = WS_SUBSCRIBERS;
    let allDone!: () => void;
    const done = new Promise<void>((resolve) => (allDone = resolve));
    const open = async (): Promise<void> => {
      const ws = new WebSocket(url);
      sockets.push(ws);
      ws.on('message', (data: Buffer) => {
        const at = wallNow();
        const p = (JSON.parse(data.toString()) as { payload: { data: { taskProgress: { step: number; sentAt: number } } } }).payload.data.taskProgress;
        received.push(at - p.sentAt);
        if (p.step === STEPS && --remaining === 0) allDone();
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
    };
    await openAll(WS_SUBSCRIBERS, open);
    const after = await rss(child.pid!);
    const busyFrom = eventLoop.eventLoopUtilization();
    child.stdin.write('go\n');
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('bare ws: not every socket got every frame')), STEPS * STEP_MS + 30_000).unref());
    await Promise.race([done, timeout]);
    if (received.length !== WS_SUBSCRIBERS * STEPS) throw new Error(`bare ws: ${received.length} frames received, expected ${WS_SUBSCRIBERS * STEPS}`);
    const clientBusy = eventLoop.eventLoopUtilization(busyFrom).utilization;
    return { delays: received, rssPerSocket: (after - before) / WS_SUBSCRIBERS, clientBusy };
  } finally {
    for (const ws of sockets) ws.terminate();
    child.kill('SIGKILL');
    await exited;
  }
}

export async function benchFanout(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-fanout-'));
  try {
    const svc = await throughService(dir);
    const bare = await bareBroadcast(svc.sampleFrame);
    const ms = (x: number) => `${x.toFixed(1)} ms`;
    const pair = (v: number[]) => `p50 ${ms(percentile(v, 50))}, p99 ${ms(percentile(v, 99))}`;
    const folded = (d: { folded: number }, n: number) =>
      d.folded ? `; ${((100 * d.folded) / (n * STEPS)).toFixed(1)}% of the steps came folded into a later frame` : '';
    const basePair = `bare ws broadcast to ${WS_SUBSCRIBERS} sockets: ${pair(bare.delays)}`;
    const load = `${STEPS} steps x ${STEP_MS} ms, ${WS_SUBSCRIBERS} graphql-ws + ${SSE_SUBSCRIBERS} SSE subscribers on one task`;
    const clientNote = `the subscribers share one bench process, its event loop ${(svc.clientBusy * 100).toFixed(0)}% busy during the task (${(bare.clientBusy * 100).toFixed(0)}% for the baseline)`;
    return [
      {
        name: `Fan-out: graphql-ws delay, simulator progress to frame (${load})`,
        figure: pair(svc.ws.values),
        baseline: basePair,
        ratio: percentile(svc.ws.values, 50) / percentile(bare.delays, 50),
        ratioLabel: 'x the baseline p50 delay',
        note: `each frame is persisted (SQLite), then the subscription is executed and serialized once per subscriber: one frame takes ${ms(svc.spread)} to reach all ${WS_SUBSCRIBERS + SSE_SUBSCRIBERS}, the delay is that fan-out (node-only frames are throttled, so the start of sampling brings no burst)${folded(svc.ws, WS_SUBSCRIBERS)}; ${clientNote}`,
      },
      {
        name: `Fan-out: SSE delay, simulator progress to frame (${load})`,
        figure: pair(svc.sse.values),
        baseline: basePair,
        ratio: percentile(svc.sse.values, 50) / percentile(bare.delays, 50),
        ratioLabel: 'x the baseline p50 delay',
        note: `as graphql-ws, plus Yoga's SSE path (each frame goes through a web ReadableStream before the socket): some ms behind graphql-ws whichever subscribed first${folded(svc.sse, SSE_SUBSCRIBERS)}; ${clientNote}`,
      },
      {
        name: `Fan-out: service RSS per subscriber (${WS_SUBSCRIBERS + SSE_SUBSCRIBERS} subscribers)`,
        figure: `${(svc.rssPerSubscriber / 1024).toFixed(1)} KB`,
        baseline: `${(bare.rssPerSocket / 1024).toFixed(1)} KB per socket, bare ws server`,
        ratio: svc.rssPerSubscriber / bare.rssPerSocket,
        ratioLabel: 'x the baseline',
        note: 'a socket with its buffers, a graphql-ws or SSE context, a bus subscription and its snapshot read; RSS growth includes heap not yet collected',
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
