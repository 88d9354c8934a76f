/**
 * The progress bus over a real Redis, with two bus instances standing for two replicas: frames
 * cross between them in order, subscriptions are released in Redis, a dropped connection ends in
 * a re-sync notice and frames flow again.
 */
import { OPEN_CALLER } from '../src/auth/caller.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isResync, type BusEvent, type FrameSubscription, type ProgressBus } from '../src/tasks/progress-bus.js';
import { emptyFrame, type ProgressFrame } from '../src/tasks/progress-frame.js';
import { RedisChannels } from '../src/tasks/redis-channels.js';
import { createRedisProgressBus } from '../src/tasks/redis-progress-bus.js';
import type { TaskStatus } from '../src/db/types.js';
import { adminConnection, channelsWithPrefix, clientIds, isolated, killClient, numsub, REDIS_URL, redisAvailable } from './helpers/redis.js';
import { postGenerate, startStack, until, waitForStatus } from './helpers/stack.js';
import { TaskService } from '../src/tasks/task-service.js';

const available = await redisAvailable('redis-progress-bus');

function frame(taskId: string, seq: number, status: TaskStatus = 'processing'): ProgressFrame {
  return { ...emptyFrame(taskId, status, Math.min(seq, 99)), seq };
}

/** Reads events until (and with) the first final frame. */
async function readToFinal(sub: FrameSubscription): Promise<BusEvent[]> {
  const seen: BusEvent[] = [];
  for await (const event of sub) {
    seen.push(event);
    if (!isResync(event) && event.status === 'completed') break;
  }
  return seen;
}

async function nextEvent(sub: FrameSubscription): Promise<BusEvent> {
  const r = await sub.next();
  if (r.done) throw new Error('subscription ended');
  return r.value;
}

describe.runIf(available)('Redis progress bus', () => {
  let admin: Redis;
  let buses: ProgressBus[] = [];
  let ids: { prefix: string; name: string };

  /** Replica `i` of this test: its own connections, the test's prefix. */
  function replica(i: number, options: { maxBuffered?: number } = {}): ProgressBus {
    const bus = createRedisProgressBus(REDIS_URL, { prefix: ids.prefix, name: `${ids.name}-${i}`, ...options });
    buses.push(bus);
    return bus;
  }

  beforeAll(() => {
    admin = adminConnection();
  });
  afterAll(() => admin.disconnect());
  afterEach(async () => {
    await Promise.all(buses.map((b) => b.close()));
    buses = [];
  });
  beforeEach(() => {
    ids = isolated();
  });

  it('delivers frames published on one replica to subscribers on both, in seq order', async () => {
    const a = replica(0);
    const b = replica(1);
    const onB = b.subscribe('t1');
    const onA = a.subscribe('t1');
    const other = b.subscribe('t2');
    await Promise.all([onA.ready, onB.ready, other.ready]);
    for (let seq = 1; seq < 500; seq++) a.publish(frame('t1', seq));
    a.publish(frame('t1', 500, 'completed'));
    a.publish(frame('t2', 1, 'completed'));
    const expected = Array.from({ length: 500 }, (_, i) => i + 1);
    const [fromB, fromA] = await Promise.all([readToFinal(onB), readToFinal(onA)]);
    expect(fromB.map((e) => (isResync(e) ? 'resync' : e.seq))).toEqual(expected);
    expect(fromA.map((e) => (isResync(e) ? 'resync' : e.seq))).toEqual(expected);
    expect(fromB.at(-1)).toEqual(frame('t1', 500, 'completed'));
    // Another task's channel carries only its own frames.
    expect(await nextEvent(other)).toEqual(frame('t2', 1, 'completed'));
  });

  it('a frame published right after ready resolves is delivered, even on a replica still connecting', async () => {
    const a = replica(0);
    await a.subscribe('warm-up').ready; // A's connections are up
    for (let round = 1; round <= 5; round++) {
      // A fresh replica: its SUBSCRIBE waits for the connection, so only `ready` tells when it is live.
      const b = replica(round);
      const sub = b.subscribe('t1');
      await sub.ready;
      a.publish(frame('t1', round));
      expect(await nextEvent(sub)).toMatchObject({ taskId: 't1', seq: round });
    }
  });

  it('ignores messages on a task channel that are not frames', async () => {
    const [a, b] = [replica(0), replica(1)];
    const sub = b.subscribe('t1');
    await sub.ready;
    for (const junk of ['not json', 'null', '{"taskId":"t1"}']) await admin.publish(`${ids.prefix}progress:t1`, junk);
    a.publish(frame('t1', 1));
    expect(await nextEvent(sub)).toEqual(frame('t1', 1));
  });

  it('one Redis subscription per task and process, released after the last local subscriber', async () => {
    const [a, b] = [replica(0), replica(1)];
    const channel = `${ids.prefix}progress:t1`;
    const subs = [a.subscribe('t1'), b.subscribe('t1'), b.subscribe('t1'), b.subscribe('t1')];
    await Promise.all(subs.map((s) => s.ready));
    expect(b.subscriberCount()).toBe(3);
    expect(await numsub(admin, channel)).toBe(2); // one per replica, not per subscriber
    subs[1]!.close();
    subs[2]!.close();
    a.publish(frame('t1', 1));
    expect(await nextEvent(subs[3]!)).toMatchObject({ seq: 1 });
    expect(await numsub(admin, channel)).toBe(2);
    subs[0]!.close();
    subs[3]!.close();
    expect(a.subscriberCount() + b.subscriberCount()).toBe(0);
    // UNSUBSCRIBE is asynchronous: wait until Redis has processed it.
    await until('the channel to be released', async () => (await numsub(admin, channel)) === 0, 5000);
    expect(await channelsWithPrefix(admin, ids.prefix)).toEqual([]);
    // A closed subscription ends its iteration.
    expect(await subs[3]!.next()).toEqual({ value: undefined, done: true });
    // Subscribing again after the release works.
    const again = b.subscribe('t1');
    await again.ready;
    a.publish(frame('t1', 2));
    expect(await nextEvent(again)).toMatchObject({ seq: 2 });
  });

  it('after the subscriber connection is killed: a re-sync notice, then later frames', async () => {
    const [a, b] = [replica(0), replica(1)];
    const sub = b.subscribe('t1');
    await sub.ready;
    a.publish(frame('t1', 1));
    expect(await nextEvent(sub)).toMatchObject({ seq: 1 });

    await killClient(admin, `${ids.name}-1:sub`);
    expect(await nextEvent(sub)).toEqual({ type: 'resync' });
    // The notice comes once Redis confirmed the new SUBSCRIBE: the next frame is not lost.
    expect(await numsub(admin, `${ids.prefix}progress:t1`)).toBe(1);
    a.publish(frame('t1', 2));
    a.publish(frame('t1', 3, 'completed'));
    expect((await readToFinal(sub)).map((e) => (isResync(e) ? 'resync' : e.seq))).toEqual([2, 3]);
  });

  it('a killed publisher connection reconnects and later frames arrive', async () => {
    const [a, b] = [replica(0), replica(1)];
    const sub = b.subscribe('t1');
    await sub.ready;
    await killClient(admin, `${ids.name}-0:pub`);
    // Published while the connection may be down: queued by the client and sent after the reconnect.
    a.publish(frame('t1', 1));
    a.publish(frame('t1', 2, 'completed'));
    const seen = (await readToFinal(sub)).filter((e) => !isResync(e));
    expect(seen.at(-1)).toMatchObject({ seq: 2, status: 'completed' });
  });

  it('keeps at most maxBuffered events for a subscriber that does not read, never the final frame', async () => {
    const [a, b] = [replica(0), replica(1, { maxBuffered: 3 })];
    const slow = b.subscribe('t1');
    const b2 = replica(2);
    const reader = b2.subscribe('t1');
    const sameProcess = b.subscribe('t2');
    await Promise.all([slow.ready, reader.ready, sameProcess.ready]);
    for (let seq = 1; seq <= 9; seq++) a.publish(frame('t1', seq));
    a.publish(frame('t1', 10, 'completed'));
    a.publish(frame('t2', 1));
    await readToFinal(reader);
    // B's connection got t1's frames before t2's (one publisher, one order).
    await nextEvent(sameProcess);
    expect((await readToFinal(slow)).map((e) => (isResync(e) ? 'resync' : e.seq))).toEqual([8, 9, 10]);
  });

  it('close() ends open subscriptions, releases the channels and the connections', async () => {
    const a = replica(0);
    const sub = a.subscribe('t1');
    await sub.ready;
    const pending = sub.next();
    expect(await clientIds(admin, `${ids.name}-0:sub`)).toHaveLength(1);
    await a.close();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(a.subscriberCount()).toBe(0);
    await until('the connections to go', async () => (await clientIds(admin, `${ids.name}-0:sub`)).length + (await clientIds(admin, `${ids.name}-0:pub`)).length === 0, 5000);
    expect(await channelsWithPrefix(admin, ids.prefix)).toEqual([]);
  });

  it('a bus on shared channels leaves them open when it closes', async () => {
    const channels = new RedisChannels(REDIS_URL, { prefix: ids.prefix, name: ids.name });
    try {
      const first = createRedisProgressBus(channels);
      const second = createRedisProgressBus(channels);
      const sub = second.subscribe('t1');
      await sub.ready;
      await first.close();
      channels.publish('progress:t1', JSON.stringify(frame('t1', 1)));
      expect(await nextEvent(sub)).toMatchObject({ seq: 1 });
      expect(await clientIds(admin, `${ids.name}:sub`)).toHaveLength(1);
      await second.close();
    } finally {
      await channels.close();
    }
  });

  it('nothing keeps the process alive after close()', async () => {
    // A separate process that subscribes, receives, closes and must then exit by itself.
    const script = `
      import { createRedisProgressBus } from './src/tasks/redis-progress-bus.ts';
      import { createRedisSignals } from './src/tasks/redis-signals.ts';
      const bus = createRedisProgressBus(${JSON.stringify(REDIS_URL)}, { prefix: ${JSON.stringify(ids.prefix)} });
      const signals = createRedisSignals(${JSON.stringify(REDIS_URL)}, { prefix: ${JSON.stringify(ids.prefix)} });
      const sub = bus.subscribe('t1');
      const got = new Promise((resolve) => signals.subscribe((s) => resolve(s)).ready.then(() => signals.publish({ type: 'wake' })));
      await sub.ready;
      bus.publish({ taskId: 't1', seq: 1 });
      await sub.next();
      await got;
      await bus.close();
      await signals.close();
      console.log('closed');
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(out.trim()).toBe('closed');
    expect(code).toBe(0);
  }, 30_000);

  it('TaskService.watch over Redis: frames lost while the connection was down come back from the database', async () => {
    const stack = await startStack();
    try {
      const bus = replica(0);
      // A second front end on the same database whose live frames come only over Redis. The engine
      // publishes on the app's in-process bus, so every frame of this task is "lost" for it.
      const service = new TaskService({
        db: stack.app.db,
        engine: stack.app.engine,
        bus,
        dataDir: stack.config.dataDir,
        maxFileSize: stack.config.maxFileSize,
        maxImagePixels: stack.config.maxImagePixels,
        workflowName: stack.app.workflow.name,
      });
      stack.sims[0]!.pause(); // the task cannot finish before the watch has its snapshot
      const res = await postGenerate(stack.app.url, { description: 'a lighthouse', count: '1' });
      expect(res.status).toBe(200);
      const taskId = ((await res.json()) as { task_id: string }).task_id;
      const frames = await service.watch(taskId, OPEN_CALLER);
      if (!frames) throw new Error('unknown task');
      const first = await frames.next();
      expect(first.done).toBe(false);
      expect(first.value).toMatchObject({ taskId, status: expect.stringMatching(/^(pending|processing)$/) });
      const rest = (async () => {
        const seen = [];
        for await (const f of frames) seen.push(f);
        return seen;
      })();
      stack.sims[0]!.resume();
      await waitForStatus(stack.app.url, taskId, ['completed']);
      await killClient(admin, `${ids.name}-0:sub`);
      const seen = await rest;
      expect(seen).toHaveLength(1);
      expect(seen[0]).toEqual(await service.snapshot(taskId, OPEN_CALLER));
      expect(seen[0]).toMatchObject({ status: 'completed', progress: 100 });
      expect(bus.subscriberCount()).toBe(0);
    } finally {
      await stack.close();
    }
  }, 30_000);
});
