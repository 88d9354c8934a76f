/**
 * Live fan-out (issue 15): every watch of a task shares one bus subscription (TaskWatchHub); a
 * subscriber whose results its transport writes directly (direct-subscriber.ts) still gets, in
 * `seq` order, whatever the sink cannot write, and completes after the final frame; the graphql-ws
 * keep-alive is one timer for all sockets and still ends a socket that stops answering.
 */
import { createServer } from 'node:http';
import type { ExecutionResult } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { OPEN_CALLER } from '../src/auth/caller.js';
import { directSubscriber } from '../src/graphql/direct-subscriber.js';
import type { LiveSink } from '../src/graphql/live-sink.js';
import { attachGraphQLWs, type GraphQLWsOptions } from '../src/graphql/ws.js';
import { createGraphQLServer } from '../src/graphql/yoga.js';
import { createMemoryProgressBus } from '../src/tasks/progress-bus.js';
import { emptyFrame, type ProgressFrame } from '../src/tasks/progress-frame.js';
import { TaskWatch } from '../src/tasks/task-watch.js';
import { TaskWatchHub } from '../src/tasks/task-watch-hub.js';
import { generateTask } from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { startStack, type Stack } from './helpers/stack.js';

const frame = (seq: number, status: ProgressFrame['status'] = 'processing'): ProgressFrame => ({ ...emptyFrame('t1', status, seq), seq });

describe('a task watched by many subscribers, and the graphql-ws connections', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ sim: { stepMs: 25 } });
  });
  afterAll(async () => stack?.close());

  it('holds one bus subscription for all its watches, released with the last one', async () => {
    stack.sims[0]!.pause(); // the task cannot finish while the watches open
    try {
      const id = await generateTask(stack.app.url, { description: 'one channel', count: 1, size: '256x256', steps: 4 }, await makeImage('png', 320, 240));
      const watches = await Promise.all(Array.from({ length: 5 }, () => stack.app.service.watch(id, OPEN_CALLER)));
      expect(stack.app.service.watchers()).toBe(5);
      expect(stack.app.bus.subscriberCount()).toBe(1);
      for (const w of watches.slice(0, 4)) await w!.return();
      expect(stack.app.bus.subscriberCount()).toBe(1);
      const last = watches[4]!;
      expect((await last.next()).value).toMatchObject({ taskId: id, status: expect.stringMatching(/^(pending|processing)$/) });
      stack.sims[0]!.resume();
      const seen: ProgressFrame[] = [];
      for await (const f of last) seen.push(f);
      expect(seen.at(-1)).toMatchObject({ status: 'completed' });
      expect(seen.map((f) => f.seq)).toEqual([...seen.map((f) => f.seq)].sort((a, b) => a - b));
      expect(stack.app.service.watchers()).toBe(0);
      expect(stack.app.bus.subscriberCount()).toBe(0);
    } finally {
      stack.sims[0]!.resume();
    }
  });

  /** graphql-ws alone on a server of its own over the stack's service, with `options`; `run` gets its URL. */
  async function withWsServer(options: Partial<GraphQLWsOptions>, run: (url: string) => Promise<void>): Promise<void> {
    const { service, auth, signer } = stack.app;
    const yoga = createGraphQLServer({ service, auth, signer, maxFileSize: 1 << 20, publicUrl: undefined, corsOrigins: [] });
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const ws = attachGraphQLWs(server, { yoga, auth, ...options });
    try {
      await run(`ws://127.0.0.1:${(server.address() as { port: number }).port}/graphql`);
    } finally {
      await ws.dispose();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  it('a socket that stops answering pings is terminated, after more sockets than one batch of pings; those that answer stay', async () => {
    await withWsServer({ keepAlive: 100 }, async (url) => {
      // A round pings 64 sockets per turn of the event loop (keep-alive.ts): the silent one, connected last, is in a later batch.
      const answering = Array.from({ length: 70 }, () => new WebSocket(url, 'graphql-transport-ws'));
      await Promise.all(answering.map((s) => new Promise((resolve) => s.once('open', resolve))));
      const silent = new WebSocket(url, 'graphql-transport-ws', { autoPong: false });
      await new Promise((resolve) => silent.once('open', resolve));
      const closed = new Promise<void>((resolve) => silent.once('close', () => resolve()));
      for (const s of [silent, ...answering]) s.send(JSON.stringify({ type: 'connection_init', payload: {} }));
      await closed;
      expect(answering.filter((s) => s.readyState !== WebSocket.OPEN)).toEqual([]);
      for (const s of answering) s.close();
    });
  });

  it('a socket that never says connection_init is closed with 4408 once the wait is over; one that said it in time stays open', async () => {
    await withWsServer({ connectionInitWaitTimeout: 150 }, async (url) => {
      const [silent, polite] = [new WebSocket(url, 'graphql-transport-ws'), new WebSocket(url, 'graphql-transport-ws')];
      await Promise.all([silent, polite].map((s) => new Promise((resolve) => s.once('open', resolve))));
      const acked = new Promise((resolve) => polite.once('message', resolve));
      polite.send(JSON.stringify({ type: 'connection_init', payload: {} }));
      expect(JSON.parse(String(await acked))).toEqual({ type: 'connection_ack' });
      const [code, reason] = await new Promise<[number, string]>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the silent socket was still open after 5 s')), 5_000);
        silent.once('close', (c, r) => (clearTimeout(timer), resolve([c, String(r)])));
      });
      expect([code, reason]).toEqual([4408, 'Connection initialisation timeout']);
      // Well past the wait: the socket that said connection_init is still open and still answers.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(polite.readyState).toBe(WebSocket.OPEN);
      const pong = new Promise((resolve) => polite.once('message', resolve));
      polite.send(JSON.stringify({ type: 'ping' }));
      expect(JSON.parse(String(await pong))).toEqual({ type: 'pong' });
      polite.close();
    });
  });
});

describe('a directly written subscriber', () => {
  /** A watch fed by hand through a hub on an in-process bus; `sink` takes what `accepts` says. */
  async function setUp(accepts: (seq: number) => boolean) {
    const bus = createMemoryProgressBus();
    const hub = new TaskWatchHub(bus, async () => undefined);
    const watch = new TaskWatch('t1', hub);
    await hub.add('t1', watch);
    watch.start(frame(1));
    const written: number[] = [];
    const sink: LiveSink = {
      claim: () => true,
      write: (result, _final) => {
        const seq = (result.data as { seq: number }).seq;
        if (!accepts(seq)) return false;
        written.push(seq);
        return true;
      },
    };
    const results = directSubscriber(watch, sink, (f): ExecutionResult => ({ data: { seq: f.seq } }), (err) => err);
    return { bus, hub, results, written };
  }

  it('writes the snapshot and frames through the sink, then the iterator completes after the final one', async () => {
    const { bus, hub, results, written } = await setUp(() => true);
    for (const seq of [2, 2, 3]) bus.publish(frame(seq)); // a repeated seq is dropped
    bus.publish(frame(4, 'completed'));
    bus.publish(frame(5)); // after the final frame: nothing
    expect(await results.next()).toEqual({ value: undefined, done: true });
    expect(written).toEqual([1, 2, 3, 4]);
    expect(hub.watchers).toBe(0);
  });

  it('what the sink refuses, and every frame after it, comes through the iterator in seq order', async () => {
    const { bus, results, written } = await setUp((seq) => seq !== 3);
    for (const seq of [2, 3, 4]) bus.publish(frame(seq));
    bus.publish(frame(5, 'failed'));
    const carried: unknown[] = [];
    for await (const r of results) carried.push(r.data);
    expect(written).toEqual([1, 2]);
    expect(carried).toEqual([{ seq: 3 }, { seq: 4 }, { seq: 5 }]);
  });

  it('whenReady calls back once something is to be carried or the stream ended, not for frames the sink wrote', async () => {
    const { bus, results } = await setUp((seq) => seq !== 3);
    let ready = 0;
    results.whenReady(() => ready++);
    const settled = () => new Promise((resolve) => setImmediate(resolve)); // the bus delivers asynchronously
    bus.publish(frame(2)); // written by the sink
    await settled();
    expect(ready).toBe(0);
    bus.publish(frame(3)); // refused: to be carried
    await settled();
    expect(ready).toBe(1);
    expect((await results.next()).value).toEqual({ data: { seq: 3 } });
    await results.return();
    results.whenReady(() => ready++); // ended: at once
    expect(ready).toBe(2);
  });

  it('return() stops the frames and releases the bus subscription', async () => {
    const { bus, hub, results, written } = await setUp(() => true);
    await results.return();
    bus.publish(frame(2));
    expect(written).toEqual([1]);
    expect(hub.watchers).toBe(0);
    expect(bus.subscriberCount()).toBe(0);
  });
});

describe('the order of a frame\'s fan-out', () => {
  it('goes to the kinds of subscribers with fewer members first (the transport names its kind), in joining order within one', async () => {
    const bus = createMemoryProgressBus();
    const hub = new TaskWatchHub(bus, async () => undefined);
    const got: string[] = [];
    /** A subscriber of kind `kind` (undefined: an iterated watch) that records its name on each write. */
    const subscribe = async (name: string, kind?: string) => {
      const watch = new TaskWatch('t1', hub);
      await hub.add('t1', watch);
      watch.start(frame(1));
      const sink: LiveSink = {
        ...(kind !== undefined ? { kind } : {}),
        claim: () => true,
        write: (result) => {
          if ((result.data as { seq: number }).seq > 1) got.push(name);
          return true;
        },
      };
      directSubscriber(watch, sink, (f): ExecutionResult => ({ data: { seq: f.seq } }), (err) => err);
      return watch;
    };
    const settled = () => new Promise((resolve) => setImmediate(resolve)); // the bus delivers asynchronously
    await subscribe('ws1', 'graphql-ws');
    await subscribe('ws2', 'graphql-ws');
    await subscribe('ws3', 'graphql-ws');
    await subscribe('it1'); // no kind named: with the iterated watches
    const sse1 = await subscribe('sse1', 'sse');
    bus.publish(frame(2));
    await settled();
    expect(got).toEqual(['it1', 'sse1', 'ws1', 'ws2', 'ws3']);
    // More SSE streams than graphql-ws sockets now: graphql-ws first.
    got.length = 0;
    const sse2 = await subscribe('sse2', 'sse');
    for (const n of ['sse3', 'sse4']) await subscribe(n, 'sse');
    bus.publish(frame(3));
    await settled();
    expect(got).toEqual(['it1', 'ws1', 'ws2', 'ws3', 'sse1', 'sse2', 'sse3', 'sse4']);
    // Those that leave are out of their kind's count.
    sse1.close();
    sse2.close();
    (await subscribe('ws4', 'graphql-ws')).close();
    got.length = 0;
    bus.publish(frame(4));
    await settled();
    expect(got).toEqual(['it1', 'sse3', 'sse4', 'ws1', 'ws2', 'ws3']);
    expect(hub.watchers).toBe(6);
  });
});
