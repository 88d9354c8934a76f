/**
 * Frame delays, as bench/fanout.ts and bench/replica-fanout.ts measure them: subscribers (here the
 * graphql-ws client, one socket each; SSE in bench/sse-subscriber.ts) record the step and receive
 * time of every frame; a frame's delay is from the simulator sending that step's `progress` to a
 * subscriber receiving its frame. Times are the machine's monotonic clock (`clockNow`), which every
 * process reads alike.
 */
import { randomUUID } from 'node:crypto';
import { performance as eventLoop } from 'node:perf_hooks';
import WebSocket from 'ws';

/** The subscription each subscriber runs. */
export const SUBSCRIPTION = /* GraphQL */ `subscription Watch($taskId: ID!) {
  taskProgress(taskId: $taskId) { taskId seq status progress imageIndex step totalSteps node queuePosition etaSeconds preview error image { index url } }
}`;

/** Connections opened at once while subscribing. */
const CONNECT_BATCH = 100;

/** The fields of a `taskProgress` frame the delays need. */
export interface FrameData {
  status: string;
  step: number | null;
}

/**
 * Milliseconds of the machine's monotonic clock (CLOCK_MONOTONIC, through `process.hrtime`), with
 * sub-millisecond resolution: the same clock in every process, and never stepped. Wall-clock time
 * (`performance.timeOrigin + performance.now()`) was stepped by ~7.6 s during one bench run, so
 * processes started before and after the step disagreed and a baseline's delays came out negative.
 */
export const clockNow = (): number => Number(process.hrtime.bigint()) / 1e6;

/** One subscriber's view: the step of each frame it received, in order, and when. */
export interface Subscriber {
  /** [step, receive time]; the final frame counts as every step. */
  frames: [number, number][];
  /** Resolves at the final frame. */
  done: Promise<void>;
  close(): void;
}

/** Records a subscriber's frames (whatever its transport); `done` resolves at the final one. */
export function frameRecorder(): { frames: [number, number][]; onFrame: (f: FrameData, at: number) => void; done: Promise<void> } {
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

/**
 * A graphql-ws subscriber on `wsUrl` (its own socket); resolves once the first frame (the
 * snapshot) arrived, which `onFirst` receives (default: ignored). It speaks the protocol
 * (`graphql-transport-ws`) on a bare `ws` socket and parses each message once, as the baseline's
 * sockets do (bench/bare-ws-broadcast.ts): the graphql-ws client library does several times that
 * work per message, which on one shared bench process would be measured as the service's delay.
 */
export async function wsSubscriber(wsUrl: string, taskId: string, onFirst: (data: unknown) => void = () => undefined): Promise<Subscriber> {
  const rec = frameRecorder();
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
  await new Promise<void>((resolve, reject) => {
    let got = false;
    socket.once('error', reject);
    socket.once('close', (code, reason) => reject(new Error(`socket closed before the first frame: ${code} ${String(reason)}`)));
    socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: {} })));
    socket.on('message', (data: Buffer) => {
      const at = clockNow();
      const message = JSON.parse(data.toString()) as { type: string; payload?: { data?: { taskProgress?: FrameData }; errors?: unknown } };
      if (message.type === 'connection_ack') {
        // A UUID per operation, as the graphql-ws client makes.
        socket.send(JSON.stringify({ id: randomUUID(), type: 'subscribe', payload: { query: SUBSCRIPTION, variables: { taskId } } }));
        return;
      }
      if (message.type === 'ping') return socket.send('{"type":"pong"}');
      if (message.type === 'error') return reject(new Error(`subscription error: ${JSON.stringify(message.payload)}`));
      if (message.type !== 'next') return;
      const f = message.payload?.data?.taskProgress;
      if (!f) return reject(new Error(`subscription error: ${JSON.stringify(message.payload?.errors)}`));
      if (!got) {
        got = true;
        onFirst(message.payload!.data);
        resolve();
      }
      rec.onFrame(f, at);
    });
  });
  socket.on('error', () => undefined); // terminated by close()
  return { frames: rec.frames, done: rec.done, close: () => socket.terminate() };
}

/** Opens `n` subscribers, `CONNECT_BATCH` at a time; `open(i)` opens the i-th. */
export async function openAll<T>(n: number, open: (i: number) => Promise<T>): Promise<T[]> {
  const all: T[] = [];
  for (let i = 0; i < n; i += CONNECT_BATCH) all.push(...(await Promise.all(Array.from({ length: Math.min(CONNECT_BATCH, n - i) }, (_, k) => open(i + k)))));
  return all;
}

/**
 * Delays (ms): for every subscriber and every step, from the simulator sending that step's
 * `progress` to the subscriber's first frame at that step or later (a busy service may fold a step
 * into the next frame: the wait for it still counts). `folded` counts the (subscriber, step) pairs
 * that never had a frame of their own.
 */
export function delays(subs: Subscriber[], sentAt: Map<number, number>): { values: number[]; folded: number } {
  const values: number[] = [];
  let folded = 0;
  const steps = [...sentAt].sort((a, b) => a[0] - b[0]);
  for (const s of subs) {
    let i = 0;
    for (const [step, sent] of steps) {
      while (i < s.frames.length && s.frames[i]![0] < step) i++;
      const frame = s.frames[i];
      if (!frame) throw new Error(`fan-out: a subscriber never saw step ${step}`);
      if (frame[0] !== step) folded++;
      values.push(frame[1] - sent);
    }
  }
  return { values, folded };
}

/**
 * Runs `release` (which lets the measured task go), then waits for every subscriber's final frame,
 * failing after `timeoutMs` with `what` in the message; returns the share of that window the bench
 * process's own event loop was busy (0-1).
 */
export async function releaseAndWait(subs: Subscriber[], release: () => Promise<void>, timeoutMs: number, what: string): Promise<number> {
  const busyFrom = eventLoop.eventLoopUtilization();
  await release();
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: subscribers did not all see the final frame`)), timeoutMs).unref());
  await Promise.race([Promise.all(subs.map((s) => s.done)), timeout]);
  return eventLoop.eventLoopUtilization(busyFrom).utilization;
}
