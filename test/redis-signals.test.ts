/**
 * Signals between replicas over a real Redis (two instances stand for two replicas), and the
 * in-process implementation: every subscriber gets every signal in order, closed listeners get
 * nothing, a dropped connection ends in a re-sync, and connections are shared with the bus.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RedisChannels } from '../src/tasks/redis-channels.js';
import { createRedisProgressBus } from '../src/tasks/redis-progress-bus.js';
import { createRedisSignals } from '../src/tasks/redis-signals.js';
import { createMemorySignals, type Signal, type SignalListener, type Signals, type SignalsResync } from '../src/tasks/signals.js';
import { emptyFrame } from '../src/tasks/progress-frame.js';
import { adminConnection, channelsWithPrefix, clientIds, isolated, killClient, numsub, REDIS_URL, redisAvailable } from './helpers/redis.js';
import { until } from './helpers/stack.js';

type Event = Signal | SignalsResync;

/** A listener that records events and lets a test await the nth one. */
function recorder(): { listener: SignalListener; events: Event[]; nth(n: number): Promise<Event[]> } {
  const events: Event[] = [];
  const waiters: { n: number; resolve: (e: Event[]) => void }[] = [];
  return {
    events,
    listener: (event) => {
      events.push(event);
      for (const w of waiters.filter((w) => events.length >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(events.slice(0, w.n));
      }
    },
    nth: (n) => (events.length >= n ? Promise.resolve(events.slice(0, n)) : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
}

describe('memory signals', () => {
  it('delivers every signal to every listener, asynchronously and in order; a closed listener gets nothing', async () => {
    const signals = createMemorySignals();
    const [first, second, gone] = [recorder(), recorder(), recorder()];
    signals.subscribe(first.listener);
    signals.subscribe(second.listener);
    const closed = signals.subscribe(gone.listener);
    await closed.ready;
    closed.close();
    signals.publish({ type: 'cancel', taskId: 't1' });
    signals.publish({ type: 'wake' });
    expect(first.events).toEqual([]); // not within publish(): a publisher is never re-entered
    const expected = [{ type: 'cancel', taskId: 't1' }, { type: 'wake' }];
    expect(await first.nth(2)).toEqual(expected);
    expect(await second.nth(2)).toEqual(expected);
    expect(gone.events).toEqual([]);
    await signals.close();
  });
});

const available = await redisAvailable('redis-signals');

describe.runIf(available)('Redis signals', () => {
  let admin: Redis;
  let ids: { prefix: string; name: string };
  let opened: { close(): Promise<void> }[] = [];

  function replica(i: number): Signals {
    const signals = createRedisSignals(REDIS_URL, { prefix: ids.prefix, name: `${ids.name}-${i}` });
    opened.push(signals);
    return signals;
  }

  beforeAll(() => {
    admin = adminConnection();
  });
  afterAll(() => admin.disconnect());
  beforeEach(() => {
    ids = isolated();
  });
  afterEach(async () => {
    await Promise.all(opened.map((o) => o.close()));
    opened = [];
  });

  it('a signal published on one replica reaches every listener on both, in order', async () => {
    const [a, b] = [replica(0), replica(1)];
    const [onA, onB1, onB2] = [recorder(), recorder(), recorder()];
    await Promise.all([a.subscribe(onA.listener).ready, b.subscribe(onB1.listener).ready, b.subscribe(onB2.listener).ready]);
    const sent: Signal[] = Array.from({ length: 100 }, (_, i) => (i % 3 === 0 ? { type: 'wake' } : { type: 'cancel', taskId: `t${i}` }));
    for (const s of sent) a.publish(s);
    expect(await onB1.nth(100)).toEqual(sent);
    expect(await onB2.nth(100)).toEqual(sent);
    expect(await onA.nth(100)).toEqual(sent);
  });

  it('ignores messages on the channel that are not signals', async () => {
    const b = replica(1);
    const onB = recorder();
    await b.subscribe(onB.listener).ready;
    for (const junk of ['not json', '42', '{"type":"cancel"}', '{"type":"explode"}']) await admin.publish(`${ids.prefix}signals`, junk);
    replica(0).publish({ type: 'wake' });
    expect(await onB.nth(1)).toEqual([{ type: 'wake' }]);
  });

  it('one Redis subscription per process, released after the last listener', async () => {
    const b = replica(1);
    const channel = `${ids.prefix}signals`;
    const subs = [b.subscribe(() => undefined), b.subscribe(() => undefined)];
    await Promise.all(subs.map((s) => s.ready));
    expect(await numsub(admin, channel)).toBe(1);
    subs[0]!.close();
    subs[1]!.close();
    await until('the channel to be released', async () => (await numsub(admin, channel)) === 0, 5000);
    expect(await channelsWithPrefix(admin, ids.prefix)).toEqual([]);
  });

  it('after the subscriber connection is killed: a re-sync, then later signals', async () => {
    const [a, b] = [replica(0), replica(1)];
    const onB = recorder();
    await b.subscribe(onB.listener).ready;
    await killClient(admin, `${ids.name}-1:sub`);
    expect(await onB.nth(1)).toEqual([{ type: 'resync' }]);
    a.publish({ type: 'cancel', taskId: 't9' });
    expect(await onB.nth(2)).toEqual([{ type: 'resync' }, { type: 'cancel', taskId: 't9' }]);
  });

  it('the bus and the signals of a process share its two connections', async () => {
    const channels = new RedisChannels(REDIS_URL, { prefix: ids.prefix, name: ids.name });
    const bus = createRedisProgressBus(channels);
    const signals = createRedisSignals(channels);
    try {
      const other = replica(1);
      const onSignals = recorder();
      const sub = bus.subscribe('t1');
      await Promise.all([sub.ready, signals.subscribe(onSignals.listener).ready]);
      expect(await clientIds(admin, `${ids.name}:sub`)).toHaveLength(1);
      expect(await clientIds(admin, `${ids.name}:pub`)).toHaveLength(1);
      expect(await numsub(admin, `${ids.prefix}signals`)).toBe(1);
      other.publish({ type: 'wake' });
      bus.publish({ ...emptyFrame('t1', 'processing', 5), seq: 1 });
      expect(await onSignals.nth(1)).toEqual([{ type: 'wake' }]);
      expect((await sub.next()).value).toMatchObject({ taskId: 't1', seq: 1 });
      // A reconnect of the shared connection reaches both.
      await killClient(admin, `${ids.name}:sub`);
      expect(await onSignals.nth(2)).toEqual([{ type: 'wake' }, { type: 'resync' }]);
      expect((await sub.next()).value).toEqual({ type: 'resync' });
      await signals.close();
      // Closing the signals released their channel but not the connections the bus still uses.
      await until('the signals channel to be released', async () => (await numsub(admin, `${ids.prefix}signals`)) === 0, 5000);
      expect(await clientIds(admin, `${ids.name}:sub`)).toHaveLength(1);
    } finally {
      await bus.close();
      await channels.close();
    }
  });
});
