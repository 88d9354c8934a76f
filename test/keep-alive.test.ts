/**
 * The transports' keep-alive (src/graphql/keep-alive.ts): a round reaches every connection, a batch
 * per turn of the event loop, and a set's keep-alive runs only while it has members.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KEEP_ALIVE_BATCH, KeepAliveSet, keepAliveRounds } from '../src/graphql/keep-alive.js';

describe('keep-alive rounds', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('visits every connection once per round, one batch per turn, reaching those added meanwhile and skipping those gone', () => {
    const connections = new Set(Array.from({ length: 2 * KEEP_ALIVE_BATCH + 10 }, (_, i) => i));
    const visits = new Map<number, number>();
    const running = keepAliveRounds(1000, () => connections, (c) => void visits.set(c, (visits.get(c) ?? 0) + 1));
    try {
      vi.advanceTimersToNextTimer(); // the interval: the first batch only
      expect(visits.size).toBe(KEEP_ALIVE_BATCH);
      connections.delete(2 * KEEP_ALIVE_BATCH); // not reached yet: skipped
      connections.add(-1); // added during the round: reached at its end
      vi.advanceTimersToNextTimer(); // the next batch
      expect(visits.size).toBe(2 * KEEP_ALIVE_BATCH);
      vi.advanceTimersToNextTimer();
      expect([...visits.keys()].sort((a, b) => a - b)).toEqual([...connections].sort((a, b) => a - b));
      expect(new Set(visits.values())).toEqual(new Set([1]));
      vi.advanceTimersByTime(1000); // the next round, whole
      expect(new Set(visits.values())).toEqual(new Set([2]));
    } finally {
      running.stop();
    }
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a set runs its keep-alive from its first member until its last one leaves, also when a visit removes it', () => {
    const visited: string[] = [];
    const set: KeepAliveSet<string> = new KeepAliveSet(100, (m) => {
      visited.push(m);
      if (m === 'broken') set.delete(m);
    });
    expect(vi.getTimerCount()).toBe(0);
    set.add('a');
    set.add('broken');
    vi.advanceTimersByTime(100);
    expect(visited).toEqual(['a', 'broken']);
    set.delete('a');
    expect(vi.getTimerCount()).toBe(0);
    set.add('b');
    set.add('broken');
    set.delete('b');
    vi.advanceTimersByTime(100); // the visit removes the last member: the keep-alive stops
    expect(visited).toEqual(['a', 'broken', 'broken']);
    expect(vi.getTimerCount()).toBe(0);
  });
});
