/**
 * The hub's turns: frames of many tasks arriving together are handed out over several turns of the
 * event loop (WATCHERS_PER_TURN watchers each), never a frame split between turns, and a task's
 * frames in order. Driven through the in-process bus, with turns counted in the loop's check phase.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMemoryProgressBus, type ProgressBus } from '../src/tasks/progress-bus.js';
import { emptyFrame, type ProgressFrame } from '../src/tasks/progress-frame.js';
import { TaskWatchHub, WATCHERS_PER_TURN, type FrameWatcher } from '../src/tasks/task-watch-hub.js';

const frame = (taskId: string, seq: number): ProgressFrame => ({ ...emptyFrame(taskId, 'pending', 0), seq, queuePosition: seq });

/** A watcher that notes the turn each frame reached it in. */
function watcher(turn: () => number, seen: { task: string; seq: number; turn: number }[]): FrameWatcher {
  return { frame: (f) => void seen.push({ task: f.taskId, seq: f.seq, turn: turn() }) };
}

describe('TaskWatchHub turns', () => {
  let bus: ProgressBus;
  let turn = 0;
  let ticker: NodeJS.Immediate;
  beforeEach(() => {
    bus = createMemoryProgressBus();
    turn = 0;
    ticker = setImmediate(function tick() {
      turn++;
      ticker = setImmediate(tick);
    });
  });
  afterEach(async () => {
    clearImmediate(ticker);
    await bus.close();
  });

  /** Waits until `check` holds (a few turns at most). */
  const until = async (check: () => boolean) => {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setImmediate(r));
    expect(check()).toBe(true);
  };

  it('hands frames of tasks published together to at most the budget of watchers per turn, first come first', async () => {
    const hub = new TaskWatchHub(bus, async () => undefined, 2);
    const seen: { task: string; seq: number; turn: number }[] = [];
    const tasks = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const t of tasks) await hub.add(t, watcher(() => turn, seen));
    for (const t of tasks) bus.publish(frame(t, 1));
    await until(() => seen.length === 6);
    expect(seen.map((s) => s.task)).toEqual(tasks);
    const turns = seen.map((s) => s.turn - seen[0]!.turn);
    expect(turns).toEqual([0, 0, 1, 1, 2, 2]);
  });

  it('never splits a frame: a frame with more watchers than the budget reaches them all in one turn, and the next task waits', async () => {
    const hub = new TaskWatchHub(bus, async () => undefined, 3);
    const seen: { task: string; seq: number; turn: number }[] = [];
    for (let i = 0; i < 5; i++) await hub.add('big', watcher(() => turn, seen));
    await hub.add('small', watcher(() => turn, seen));
    bus.publish(frame('big', 1));
    bus.publish(frame('small', 1));
    await until(() => seen.length === 6);
    const big = seen.filter((s) => s.task === 'big');
    expect(new Set(big.map((s) => s.turn)).size).toBe(1);
    expect(seen.find((s) => s.task === 'small')!.turn).toBeGreaterThan(big[0]!.turn);
  });

  it("keeps each task's frames in order while they wait for turns", async () => {
    const hub = new TaskWatchHub(bus, async () => undefined, 1);
    const seen: { task: string; seq: number; turn: number }[] = [];
    for (const t of ['a', 'b']) await hub.add(t, watcher(() => turn, seen));
    for (let seq = 1; seq <= 4; seq++) for (const t of ['a', 'b']) bus.publish(frame(t, seq));
    await until(() => seen.length === 8);
    for (const t of ['a', 'b']) expect(seen.filter((s) => s.task === t).map((s) => s.seq)).toEqual([1, 2, 3, 4]);
    // One watcher per turn: eight turns for eight frames.
    expect(new Set(seen.map((s) => s.turn)).size).toBe(8);
  });

  it('a frame alone goes in the turn it arrives in, however many watchers earlier turns took', async () => {
    const hub = new TaskWatchHub(bus, async () => undefined);
    const seen: { task: string; seq: number; turn: number }[] = [];
    for (let i = 0; i < WATCHERS_PER_TURN * 2; i++) await hub.add('busy', watcher(() => turn, seen));
    bus.publish(frame('busy', 1));
    await until(() => seen.length === WATCHERS_PER_TURN * 2);
    await new Promise((r) => setImmediate(r));
    const publishedIn = turn;
    bus.publish(frame('busy', 2));
    await until(() => seen.length === WATCHERS_PER_TURN * 4);
    expect(new Set(seen.slice(WATCHERS_PER_TURN * 2).map((s) => s.turn))).toEqual(new Set([publishedIn]));
  });
});
