/**
 * Contract tests of ComfySocket over real WebSockets. Connection faults that the simulator cannot
 * produce on demand (silent servers, malformed frames, no pongs) come from a bare `ws` server
 * scripted per test; the real message flow comes from the simulator.
 */
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { ComfyTimeoutError, ComfyUnreachableError } from '../src/comfyui/errors.js';
import { encodePreviewFrame, encodePreviewFrameWithMetadata, type WsMessage } from '../src/comfyui/protocol.js';
import { ComfySocket, type SocketOpenEvent, type SocketPreviewEvent } from '../src/comfyui/socket.js';
import { startSimulator } from '../simulator/server.js';
import { closedPort } from './helpers/ports.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface FakeServer {
  url: string;
  port: number;
  wss: WebSocketServer;
  /** clientId query value of each connection, in order. */
  clientIds: string[];
  /** Text messages received from clients, per connection index. */
  received: string[][];
  sockets: WebSocket[];
}

/** A bare WebSocket server. `greet` false: it never sends the connect `status`. */
async function fakeServer(options: { greet?: boolean; autoPong?: boolean; port?: number } = {}): Promise<FakeServer> {
  const wss = new WebSocketServer({ port: options.port ?? 0, host: '127.0.0.1', autoPong: options.autoPong ?? true });
  await once(wss, 'listening');
  const port = (wss.address() as { port: number }).port;
  const server: FakeServer = { url: `http://127.0.0.1:${port}`, port, wss, clientIds: [], received: [], sockets: [] };
  wss.on('connection', (ws, req) => {
    const clientId = new URL(req.url ?? '/', 'http://x').searchParams.get('clientId') ?? '';
    const index = server.clientIds.length;
    server.clientIds.push(clientId);
    server.received.push([]);
    server.sockets.push(ws);
    ws.on('message', (data, isBinary) => {
      if (!isBinary) server.received[index]?.push(data.toString());
    });
    if (options.greet ?? true) ws.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: clientId } }));
  });
  cleanups.push(async () => {
    for (const ws of wss.clients) ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  return server;
}

function socketFor(url: string, options: ConstructorParameters<typeof ComfySocket>[1] = {}): ComfySocket {
  const socket = new ComfySocket(url, { reconnectInitialMs: 20, reconnectMaxMs: 100, ...options });
  cleanups.push(() => socket.close());
  return socket;
}


function nextEvent<K extends 'open' | 'close' | 'preview' | 'message'>(socket: ComfySocket, name: K, timeoutMs = 5_000) {
  return new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} event within ${timeoutMs} ms`)), timeoutMs);
    socket.once(name, ((value: unknown) => {
      clearTimeout(timer);
      resolve(value);
    }) as never);
  });
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('ComfySocket', () => {
  it('resolves connect() after the first status and sends feature_flags as its first message', async () => {
    const server = await fakeServer();
    const socket = socketFor(server.url);
    const opened = nextEvent(socket, 'open');
    await socket.connect();
    expect(socket.isOpen).toBe(true);
    expect(await opened).toEqual({ clientId: socket.clientId, reconnected: false });
    expect(server.clientIds).toEqual([socket.clientId]);
    await until(() => (server.received[0]?.length ?? 0) > 0);
    expect(JSON.parse(server.received[0]?.[0] ?? '')).toEqual({ type: 'feature_flags', data: { supports_preview_metadata: true } });
  });

  it('sends nothing when previewMetadata is off', async () => {
    const server = await fakeServer();
    const socket = socketFor(server.url, { previewMetadata: false });
    await socket.connect();
    // Frames arrive in order: once the client's close frame is in, anything it sent before is too.
    const closedByClient = once(server.sockets[0]!, 'close');
    await socket.close();
    expect((await closedByClient)[0]).toBe(1000);
    expect(server.received[0]).toEqual([]);
  });

  it('reconnects with a fresh clientId after the server drops the connection', async () => {
    const server = await fakeServer();
    const socket = socketFor(server.url);
    await socket.connect();
    const firstId = socket.clientId;
    const closed = nextEvent(socket, 'close');
    const reopened = nextEvent(socket, 'open');
    server.sockets[0]?.terminate();
    expect(await closed).toMatchObject({ code: 1006 });
    const open = (await reopened) as SocketOpenEvent;
    expect(open.reconnected).toBe(true);
    expect(open.clientId).not.toBe(firstId);
    expect(server.clientIds).toEqual([firstId, open.clientId]);
  });

  it('stops reconnecting after close()', async () => {
    const server = await fakeServer();
    // A reconnect is always a timer (the backoff): with the socket's timers under the test's
    // control, "no timer left" proves that none will come, without waiting for one.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const socket = socketFor(server.url);
      await socket.connect();
      expect(vi.getTimerCount()).toBe(1); // the ping interval
      const serverSide = once(server.sockets[0]!, 'close');
      await socket.close();
      await serverSide;
      expect(socket.isOpen).toBe(false);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('stops reconnecting when close() comes while it waits to reconnect', async () => {
    const server = await fakeServer();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const socket = socketFor(server.url);
      await socket.connect();
      const closed = nextEvent(socket, 'close');
      server.sockets[0]!.terminate();
      await closed;
      expect(vi.getTimerCount()).toBe(1); // the backoff
      await socket.close();
      expect(vi.getTimerCount()).toBe(0);
      expect(server.clientIds).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('rejects the first connect with ComfyUnreachableError and keeps retrying until the server is up', async () => {
    const port = await closedPort();
    const socket = socketFor(`http://127.0.0.1:${port}`);
    const attempt = socket.connect();
    await expect(attempt).rejects.toBeInstanceOf(ComfyUnreachableError);
    await expect(attempt).rejects.toThrow(`ComfyUI at http://127.0.0.1:${port} is unreachable: ECONNREFUSED`);
    const opened = nextEvent(socket, 'open');
    await fakeServer({ port });
    expect(await opened).toMatchObject({ reconnected: false });
  });

  it('times out a connection that never sends its first status, then retries', async () => {
    const server = await fakeServer({ greet: false });
    const socket = socketFor(server.url, { connectTimeoutMs: 150 });
    const started = Date.now();
    await expect(socket.connect()).rejects.toBeInstanceOf(ComfyTimeoutError);
    expect(Date.now() - started).toBeLessThan(1_000);
    await until(() => server.clientIds.length >= 2);
  });

  it('drops a connection whose pings go unanswered and reconnects', async () => {
    const server = await fakeServer({ autoPong: false });
    const socket = socketFor(server.url, { pingIntervalMs: 100 });
    await socket.connect();
    const firstId = socket.clientId;
    let pings = 0;
    server.sockets[0]!.on('ping', () => pings++);
    const closed = nextEvent(socket, 'close', 2_000);
    const reopened = nextEvent(socket, 'open', 3_000);
    // Terminated by the client (no close frame: 1006), after its ping went unanswered.
    expect(await closed).toMatchObject({ code: 1006 });
    expect(pings).toBe(1);
    const open = (await reopened) as SocketOpenEvent;
    expect(open).toMatchObject({ reconnected: true });
    expect(server.clientIds).toEqual([firstId, open.clientId]);
  });

  it('ignores and counts malformed frames and unknown types, and keeps delivering messages', async () => {
    const server = await fakeServer();
    const socket = socketFor(server.url);
    const errors: Error[] = [];
    socket.on('error', (err) => errors.push(err));
    const messages: WsMessage[] = [];
    socket.on('message', (msg) => messages.push(msg));
    await socket.connect();
    const ws = server.sockets[0];
    ws?.send('not json');
    ws?.send('{"type":"progress","data":{"value":"three"}}');
    ws?.send(Buffer.from([0, 0]), { binary: true });
    ws?.send('{"type":"logs","data":{"entries":[]}}');
    ws?.send(JSON.stringify({ type: 'progress', data: { value: 1, max: 2, prompt_id: 'p', node: '31' } }));
    await until(() => messages.some((m) => m.type === 'progress'));
    expect(socket.malformedFrames).toBe(3);
    expect(errors).toHaveLength(3);
    expect(messages.map((m) => m.type)).toEqual(['status', 'progress']);
  });

  it('attributes type-1 previews to the latest progress and type-4 previews to their metadata', async () => {
    const server = await fakeServer();
    const socket = socketFor(server.url);
    const previews: SocketPreviewEvent[] = [];
    socket.on('preview', (p) => previews.push(p));
    await socket.connect();
    const ws = server.sockets[0];
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 1]);
    ws?.send(encodePreviewFrame(jpeg, 'image/jpeg')); // before any progress: no prompt known
    ws?.send(JSON.stringify({ type: 'progress', data: { value: 1, max: 4, prompt_id: 'p1', node: '31' } }));
    ws?.send(encodePreviewFrame(jpeg, 'image/jpeg'));
    ws?.send(
      encodePreviewFrameWithMetadata(jpeg, { node_id: '31', prompt_id: 'p2', display_node_id: '31', parent_node_id: null, real_node_id: '31', image_type: 'image/jpeg' }),
    );
    await until(() => previews.length === 3);
    expect(previews[0]).toEqual({ mime: 'image/jpeg', image: jpeg });
    expect(previews[1]).toEqual({ promptId: 'p1', nodeId: '31', mime: 'image/jpeg', image: jpeg });
    expect(previews[2]).toEqual({ promptId: 'p2', nodeId: '31', mime: 'image/jpeg', image: jpeg });
  });

  it('waitUntilOpen cuts a reconnect backoff short', async () => {
    const server = await fakeServer();
    const socket = socketFor(server.url, { reconnectInitialMs: 5_000, reconnectMaxMs: 5_000 });
    await socket.connect();
    server.sockets[0]?.terminate();
    await nextEvent(socket, 'close');
    const started = Date.now();
    expect(await socket.waitUntilOpen(2_000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('talks to the simulator: status first, feature_flags answered, reconnect after dropSockets()', async () => {
    const sim = await startSimulator({ port: 0, stepMs: 5 });
    cleanups.push(() => sim.close());
    const socket = socketFor(sim.url);
    const messages: WsMessage[] = [];
    socket.on('message', (msg) => messages.push(msg));
    await socket.connect();
    await until(() => messages.some((m) => m.type === 'feature_flags'));
    expect(messages[0]).toMatchObject({ type: 'status', data: { sid: socket.clientId } });
    expect(messages.find((m) => m.type === 'feature_flags')).toMatchObject({ data: { supports_preview_metadata: true } });
    const firstId = socket.clientId;
    const reopened = nextEvent(socket, 'open');
    sim.dropSockets();
    expect(((await reopened) as SocketOpenEvent).clientId).not.toBe(firstId);
  });
});
