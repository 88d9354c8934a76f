/**
 * A network link between the simulator and its clients, for machines without `tc netem`: the
 * simulator throttles itself. Every request arrives half a round trip late, every answer and
 * WebSocket message leaves half a round trip late, and what the server sends is serialised at the
 * link's bandwidth by one FIFO shared by all its connections (one link, as to a remote GPU box).
 * Request bodies use a second FIFO at the same rate (the link is full duplex).
 */
import type { ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';

/** Link settings: `rttMs` round trip (default 0), `mbit` bandwidth per direction (default unlimited). */
export interface LinkOptions {
  rttMs?: number;
  mbit?: number;
}

/** Bytes handed to the wire at once: small enough that concurrent answers interleave. */
const CHUNK = 64 * 1024;

const sleep = (ms: number): Promise<void> => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

/** One direction of the link: a serialising queue at `bytesPerMs` (Infinity: no limit). */
class Wire {
  /** performance.now() at which the wire is free again. */
  private freeAt = 0;

  constructor(private readonly bytesPerMs: number) {}

  /** Reserves the wire for `bytes` after what is already queued; resolves when they are on it (serialised). */
  async send(bytes: number): Promise<void> {
    if (!Number.isFinite(this.bytesPerMs) || bytes === 0) return;
    const now = performance.now();
    this.freeAt = Math.max(now, this.freeAt) + bytes / this.bytesPerMs;
    await sleep(this.freeAt - now);
  }
}

/** The link: delays and paces HTTP answers, request bodies and WebSocket messages. */
export class Link {
  /** One-way delay, ms. */
  readonly oneWayMs: number;
  /** Bandwidth per direction, bytes per ms (Infinity: no limit). */
  readonly bytesPerMs: number;
  private readonly down: Wire;
  private readonly up: Wire;
  /** Per socket: the previous message's send, so messages keep their order. */
  private readonly wsChains = new WeakMap<WebSocket, Promise<void>>();

  constructor(options: LinkOptions = {}) {
    this.oneWayMs = Math.max(0, options.rttMs ?? 0) / 2;
    this.bytesPerMs = options.mbit && options.mbit > 0 ? (options.mbit * 1e6) / 8 / 1000 : Infinity;
    this.down = new Wire(this.bytesPerMs);
    this.up = new Wire(this.bytesPerMs);
  }

  /** True when the link changes nothing (no delay, no limit). */
  get transparent(): boolean {
    return this.oneWayMs === 0 && !Number.isFinite(this.bytesPerMs);
  }

  /** Waits as long as a request's head takes to cross the link. */
  arrive(): Promise<void> {
    return sleep(this.oneWayMs);
  }

  /** Waits as long as a request body of `bytes` takes to be serialised on the uplink (its head already arrived). */
  upload(bytes: number): Promise<void> {
    return this.up.send(bytes);
  }

  /** Writes an HTTP answer: each chunk is serialised on the downlink, then reaches the client one-way delay later. */
  async reply(res: ServerResponse, status: number, headers: Record<string, string>, body: Buffer | undefined): Promise<void> {
    const chunks: Buffer[] = [];
    const data = body ?? Buffer.alloc(0);
    for (let o = 0; o < data.length; o += CHUNK) chunks.push(data.subarray(o, o + CHUNK));
    await this.down.send(256); // the status line and headers, roughly
    const arrivals: Promise<void>[] = [this.later(() => res.writeHead(status, headers))];
    for (const chunk of chunks) {
      await this.down.send(chunk.length);
      arrivals.push(this.later(() => res.write(chunk)));
    }
    await Promise.all(arrivals);
    res.end();
  }

  /** Sends a WebSocket message over the link, after the ones sent before it on `ws`. */
  sendWs(ws: WebSocket, payload: string | Buffer): void {
    const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
    const prev = this.wsChains.get(ws) ?? Promise.resolve();
    const next = prev.then(async () => {
      await this.down.send(size + 4);
      void this.later(() => {
        if (ws.readyState === 1) ws.send(payload, () => undefined);
      });
    });
    this.wsChains.set(ws, next);
  }

  /** Runs `fn` one-way delay from now (timers of equal delay fire in order, so order is kept). */
  private later(fn: () => void): Promise<void> {
    if (this.oneWayMs === 0) {
      fn();
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      setTimeout(() => {
        try {
          fn();
        } catch {
          // the connection went away while the bytes were "on the wire"
        }
        resolve();
      }, this.oneWayMs),
    );
  }
}
