/**
 * The transports' keep-alive (src/graphql/keep-alive.ts): a round reaches every connection in
 * batches spread over half the interval, and a set's keep-alive runs only while it has members.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KEEP_ALIVE_BATCH, KEEP_ALIVE_SPREAD, KeepAliveSet, keepAliveRounds } from '../src/graphql/keep-alive.js';

describe('keep-alive rounds', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('visits every connection once per round, in batches spread over half the interval, reaching those added meanwhile and skipping those gone', () => {
    const connections = new Set(Array.from({ length: 2 * KEEP_ALIVE_BATCH + 10 }, (_, i) => i));
    const visits = new Map<number, number>();
    const started = Date.now();
    const running = keepAliveRounds(1000, () => connections, (c) => void visits.set(c, (visits.get(c) ?? 0) + 1));
    try {
      vi.advanceTimersToNextTimer(); // the interval: the first batch only
      expect(visits.size).toBe(KEEP_ALIVE_BATCH);
      // Three batches over half of the 1000 ms: the next one is 1000 * 0.5 / 3 ms later, not the next turn.
      vi.advanceTimersByTime(150);
      expect(visits.size).toBe(KEEP_ALIVE_BATCH);
      connections.delete(2 * KEEP_ALIVE_BATCH); // not reached yet: skipped
      connections.add(-1); // added during the round: reached at its end
      vi.advanceTimersToNextTimer(); // the next batch
      expect(visits.size).toBe(2 * KEEP_ALIVE_BATCH);
      vi.advanceTimersToNextTimer();
      expect([...visits.keys()].sort((a, b) => a - b)).toEqual([...connections].sort((a, b) => a - b));
      expect(new Set(visits.values())).toEqual(new Set([1]));
      // The last batch two spacings after the first (timers count whole milliseconds).
      expect(Math.abs(Date.now() - started - (1000 + (2 * 1000 * KEEP_ALIVE_SPREAD) / 3))).toBeLessThanOrEqual(2);
      vi.advanceTimersByTime(1000 + 1000 * KEEP_ALIVE_SPREAD); // the next round, whole
      expect(new Set(visits.values())).toEqual(new Set([2]));
    } finally {
      running.stop();
    }
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a few connections (one batch) are visited at once; stop() in the middle of a spread round ends it', () => {
    const few = new Set(['a', 'b']);
    const visited: string[] = [];
    const once = keepAliveRounds(100, () => few, (c) => void visited.push(c));
    vi.advanceTimersByTime(100);
    expect(visited).toEqual(['a', 'b']);
    once.stop();
    expect(vi.getTimerCount()).toBe(0);

    const many = new Set(Array.from({ length: 3 * KEEP_ALIVE_BATCH }, (_, i) => i));
    let visits = 0;
    const spread = keepAliveRounds(100, () => many, () => void visits++);
    vi.advanceTimersByTime(100);
    expect(visits).toBe(KEEP_ALIVE_BATCH);
    spread.stop(); // the round's next batch is pending
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(visits).toBe(KEEP_ALIVE_BATCH);
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
