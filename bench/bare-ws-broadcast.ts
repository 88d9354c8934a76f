/**
 * The fan-out baseline: a bare `ws` server in a child process broadcasting frames of the same size
 * as the service's to as many sockets at the same pace, each frame stamped with its send time
 * (bench/ws-frame-delays.ts's `clockNow()`, the machine's monotonic clock, which every process reads alike).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance as eventLoop } from 'node:perf_hooks';
import WebSocket from 'ws';
import { collectable } from './collect-garbage.js';
import { clockNow, openAll } from './ws-frame-delays.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** What the broadcast measured. */
export interface BroadcastResult {
  /** Send-to-receive times of every frame at every socket, ms. */
  delays: number[];
  /** Share of the broadcast the bench process's event loop was busy (0-1). */
  clientBusy: number;
  /** The server's RSS growth per connected socket, bytes, each reading after a full collection. */
  rssPerSocket: number;
}

/** How the baseline broadcasts. */
export interface BroadcastOptions {
  /** A graphql-ws `next` message as the service's subscribers receive it; its step and send time are rewritten per frame. */
  sampleFrame: string;
  /** Sockets connected. */
  sockets: number;
  /** Frames sent to each. */
  steps: number;
  /** Ms between frames. */
  stepMs: number;
  /** Rooms the sockets are spread over (socket i in room i % rooms); frames go to room 0 only. @default 1 */
  rooms?: number;
}

/** Broadcasts `steps` frames like `sampleFrame`, one every `stepMs`, to the sockets of room 0 (all of them with one room). */
export async function bareBroadcast({ sampleFrame, sockets: count, steps, stepMs, rooms = 1 }: BroadcastOptions): Promise<BroadcastResult> {
  // CommonJS in a child: `ws` resolves from the repository's node_modules (the working directory).
  const code = `
    const { WebSocketServer } = require('ws');
    const frame = JSON.parse(process.env.FRAME);
    const steps = Number(process.env.STEPS), stepMs = Number(process.env.STEP_MS);
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 }, () => console.log('bare ws listening on ws://127.0.0.1:' + wss.address().port));
    // A room per socket, from its URL (/?room=N), as a chat server keeps them; frames go to room 0.
    const rooms = new Map();
    wss.on('connection', (ws, req) => {
      const room = new URL(req.url, 'http://x').searchParams.get('room') ?? '0';
      if (!rooms.has(room)) rooms.set(room, new Set());
      rooms.get(room).add(ws);
      ws.once('close', () => rooms.get(room).delete(ws));
    });
    process.stdin.once('data', () => {
      let step = 0;
      const tick = () => {
        step++;
        const progress = frame.payload.data.taskProgress;
        progress.step = step;
        progress.sentAt = Number(process.hrtime.bigint()) / 1e6; // clockNow()
        const text = JSON.stringify(frame);
        for (const ws of rooms.get('0') ?? []) ws.send(text);
        if (step < steps) setTimeout(tick, stepMs);
      };
      tick();
    });`;
  const gc = collectable();
  const child = spawn(process.execPath, ['-e', code], {
    cwd: ROOT,
    env: { ...process.env, ...gc.env, FRAME: sampleFrame, STEPS: String(steps), STEP_MS: String(stepMs) },
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
    const before = await gc.rss(child.pid!);
    const received: number[] = [];
    const measured = Math.ceil(count / rooms);
    let remaining = measured;
    let allDone!: () => void;
    const done = new Promise<void>((resolve) => (allDone = resolve));
    const open = async (i: number): Promise<void> => {
      const ws = new WebSocket(`${url}/?room=${i % rooms}`);
      sockets.push(ws);
      ws.on('message', (data: Buffer) => {
        const at = clockNow();
        const p = (JSON.parse(data.toString()) as { payload: { data: { taskProgress: { step: number; sentAt: number } } } }).payload.data.taskProgress;
        received.push(at - p.sentAt);
        if (p.step === steps && --remaining === 0) allDone();
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
    };
    await openAll(count, open);
    const after = await gc.rss(child.pid!);
    const busyFrom = eventLoop.eventLoopUtilization();
    child.stdin.write('go\n');
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('bare ws: not every socket got every frame')), steps * stepMs + 30_000).unref());
    await Promise.race([done, timeout]);
    if (received.length !== measured * steps) throw new Error(`bare ws: ${received.length} frames received, expected ${measured * steps}`);
    const clientBusy = eventLoop.eventLoopUtilization(busyFrom).utilization;
    return { delays: received, rssPerSocket: (after - before) / count, clientBusy };
  } finally {
    for (const ws of sockets) ws.terminate();
    child.kill('SIGKILL');
    await exited;
    await gc.dispose();
  }
}
