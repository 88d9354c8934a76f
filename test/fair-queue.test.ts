/**
 * The fair queue: the order as a pure function, then the real service (one simulator, one task at
 * a time) starting tasks round-robin across API keys, higher priority first, with queue positions
 * (service reads and the announced progress frames) in that same order; QUEUE_POLICY=fifo keeps
 * the oldest first.
 */
import { newTaskId } from '../src/tasks/ids.js';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { callerOfKey, type Caller } from '../src/auth/caller.js';
import { createApiKey } from '../src/auth/create-api-key.js';
import type { Db } from '../src/db/database.js';
import { claimNextPending, findTask, insertTask, pendingTaskIds, queuePosition } from '../src/db/tasks.js';
import type { KeyPriority } from '../src/db/types.js';
import { fairOrder, type QueuedTask, type QueueOwner } from '../src/tasks/fair-order.js';
import type { GenerateParams } from '../src/tasks/generate-params.js';
import type { ProgressFrame } from '../src/tasks/progress-frame.js';
import type { StoredUpload } from '../src/uploads/upload-sink.js';
import { forEachDialect } from './helpers/databases.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, type Stack } from './helpers/stack.js';

describe('fairOrder', () => {
  const t = (id: string, owner: string | null, minute: number): QueuedTask => ({ id, owner, createdAt: `2026-01-01T10:${String(minute).padStart(2, '0')}:00.000Z` });
  const owners = (entries: [string | null, QueueOwner][]) => new Map(entries);

  it('keeps one owner oldest first, whatever order the tasks come in', () => {
    expect(fairOrder([t('c', 'A', 3), t('a', 'A', 1), t('b', 'A', 2)], owners([]))).toEqual(['a', 'b', 'c']);
    expect(fairOrder([], owners([]))).toEqual([]);
  });

  it("puts B's one task right after A's first when neither was served, and first when A was", () => {
    const tasks = [...Array.from({ length: 8 }, (_, i) => t(`a${i + 1}`, 'A', i)), t('b1', 'B', 9)];
    expect(fairOrder(tasks, owners([]))).toEqual(['a1', 'b1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8']);
    // A's first task started (it is no longer pending): B, never served, goes before A's next.
    const served = owners([['A', { lastServedAt: '2026-01-01T10:10:00.000Z' }]]);
    expect(fairOrder(tasks.slice(1), served)).toEqual(['b1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8']);
  });

  it('takes rounds across owners, the least recently served first', () => {
    const tasks = [t('a1', 'A', 1), t('a2', 'A', 2), t('a3', 'A', 3), t('b1', 'B', 4), t('b2', 'B', 5), t('c1', 'C', 6)];
    const served = owners([
      ['A', { lastServedAt: '2026-01-01T09:30:00.000Z' }],
      ['B', { lastServedAt: '2026-01-01T09:00:00.000Z' }],
    ]);
    // C never served, then B (served longest ago), then A.
    expect(fairOrder(tasks, served)).toEqual(['c1', 'b1', 'a1', 'b2', 'a2', 'a3']);
  });

  it('serves a higher priority class entirely first; the open owner and unknown keys count as normal', () => {
    const tasks = [t('l1', 'L', 1), t('o1', null, 2), t('n1', 'N', 3), t('h1', 'H', 4), t('l2', 'L', 5), t('h2', 'H', 6), t('u1', 'gone', 7)];
    const priorities = owners([
      ['L', { priority: 'low' }],
      ['N', { priority: 'normal', lastServedAt: '2026-01-01T09:00:00.000Z' }],
      ['H', { priority: 'high', lastServedAt: '2026-01-01T11:00:00.000Z' }],
    ]);
    expect(fairOrder(tasks, priorities)).toEqual(['h1', 'h2', 'o1', 'u1', 'n1', 'l1', 'l2']);
  });
});

forEachDialect('the fair queue in SQL', (ctx) => {
  const at = (second: number) => `2026-01-01T10:00:${String(second).padStart(2, '0')}.000Z`;
  /** Inserts a task of `owner` (a key id, or null) created at second `second`. */
  const task = (db: Db, id: string, owner: string | null, second: number, started?: number) =>
    insertTask(db, { id, description: id, status: started === undefined ? 'pending' : 'completed', created_at: at(second), updated_at: at(second), owner_key_id: owner, started_at: started === undefined ? null : at(started) });
  /** Claims one task at second `second` (each claim later than the last). */
  const claim = (db: Db, second: number, policy: 'fair' | 'fifo') =>
    db.transaction().execute(async (trx) => (await claimNextPending(trx, { instance: 'i', now: at(second), leaseUntil: at(59), maxProcessing: 100, policy }))?.id);

  it('claims and positions follow the fair order; fifo claims the oldest', async () => {
    const { db } = ctx;
    const key = async (name: string, priority: KeyPriority) => (await createApiKey(db, { name, priority })).row.id;
    const [a, b, h] = [await key('A', 'normal'), await key('B', 'normal'), await key('H', 'high')];
    await task(db, 'b0', b, 0, 1); // B was served before; A and the open owner never
    await task(db, 'o1', null, 2);
    await task(db, 'a1', a, 3);
    await task(db, 'a2', a, 4);
    await task(db, 'a3', a, 5);
    await task(db, 'b1', b, 6);
    await task(db, 'h1', h, 7);
    const fair = ['h1', 'o1', 'a1', 'b1', 'a2', 'a3'];
    expect(await pendingTaskIds(db)).toEqual(fair);
    expect(await pendingTaskIds(db, 'fifo')).toEqual(['o1', 'a1', 'a2', 'a3', 'b1', 'h1']);
    expect(await queuePosition(db, (await findTask(db, 'b1'))!)).toBe(3);
    expect(await queuePosition(db, (await findTask(db, 'b1'))!, 'fifo')).toBe(4);
    // Each claim makes its owner the most recently served: the claims take the order computed up front.
    const claimed: (string | undefined)[] = [];
    for (let i = 0; i < 3; i++) claimed.push(await claim(db, 10 + i, 'fair'));
    expect(claimed).toEqual(fair.slice(0, 3));
    expect(await pendingTaskIds(db)).toEqual(fair.slice(3));
    expect(await claim(db, 20, 'fifo')).toBe('a2');
    expect(await claim(db, 21, 'fair')).toBe('b1');
    expect(await claim(db, 22, 'fair')).toBe('a3');
    expect(await claim(db, 23, 'fair')).toBeUndefined();
  });
});

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

/** Parameters of a task of `steps` sampler steps (the simulator takes stepMs per step). */
const params = (description: string, steps: number): GenerateParams => ({ description, count: 1, size: '256x256', steps, guidance: 2.5, seed: 7, idempotencyKey: undefined });

/** A queue of keys on a running service: one reference image, tasks made through the service as each key. */
async function keysOn(s: Stack, priorities: Record<string, KeyPriority>) {
  const upload: StoredUpload = await s.app.service.storeReference(Readable.from(await makeImage('png', 320, 240)));
  const callers = new Map<string, Caller>();
  for (const [name, priority] of Object.entries(priorities)) callers.set(name, callerOfKey((await createApiKey(s.app.db, { name, priority })).row));
  const owner = new Map<string, Caller>();
  return {
    /** Queues a task of key `name`; returns its id. */
    async queue(name: string, description: string, steps: number): Promise<string> {
      const caller = callers.get(name)!;
      const view = await s.app.service.createTask(params(description, steps), upload, caller);
      owner.set(view.task.id, caller);
      return view.task.id;
    },
    /** The position the service reports for a task (REST queue_position, GraphQL queuePosition). */
    async position(id: string): Promise<number | null> {
      return (await s.app.service.getTask(id, owner.get(id)!))!.queuePosition;
    },
    /** Waits until every task ended; returns their ids in the order they started. */
    async startOrder(ids: string[]): Promise<string[]> {
      const rows = new Map<string, { status: string; started_at: string | null }>();
      await until(
        'every task to end',
        async () => {
          for (const id of ids) rows.set(id, (await findTask(s.app.db, id))!);
          return [...rows.values()].every((r) => ['completed', 'failed', 'cancelled'].includes(r.status));
        },
        90_000,
      );
      for (const [id, r] of rows) expect(r, id).toMatchObject({ status: 'completed' });
      return [...ids].sort((a, b) => rows.get(a)!.started_at!.localeCompare(rows.get(b)!.started_at!));
    },
  };
}

/** The queue position in a task's latest stored frame: what was last announced to its watchers. */
async function announced(s: Stack, id: string): Promise<number | null | undefined> {
  const row = await findTask(s.app.db, id);
  return row?.last_frame ? (JSON.parse(row.last_frame) as ProgressFrame).queuePosition : undefined;
}

/** Waits until `first` runs, then checks the positions of `waiting` are 1, 2, ... in that order, as read and as announced. */
async function expectPositions(s: Stack, q: Awaited<ReturnType<typeof keysOn>>, first: string, waiting: string[]): Promise<void> {
  await until('the first task to start', async () => (await findTask(s.app.db, first))!.status === 'processing', 30_000);
  expect(await Promise.all(waiting.map((id) => q.position(id)))).toEqual(waiting.map((_, i) => i + 1));
  await until('the positions to be announced', async () => (await Promise.all(waiting.map((id) => announced(s, id)))).every((p, i) => p === i + 1), 30_000);
  const batch = await s.app.service.queuePositions(waiting);
  expect(waiting.map((id) => batch.get(id))).toEqual(waiting.map((_, i) => i + 1));
}

// Each test runs a dozen tasks one at a time: minutes on a loaded CI machine, not the default 30 s.
describe('the fair queue on the service (MAX_CONCURRENT_TASKS=1, one worker)', { timeout: 180_000 }, () => {
  // The first task is long (100 steps) so that the rest is queued, and its positions read, while it runs.
  it("starts key B's one task right after key A's first of 8, and positions say so", async () => {
    stack = await startStack({ config: { maxConcurrentTasks: 1 }, sim: { stepMs: 40 } });
    const q = await keysOn(stack, { A: 'normal', B: 'normal' });
    const a = [await q.queue('A', 'a1', 100)];
    for (let i = 2; i <= 8; i++) a.push(await q.queue('A', `a${i}`, 1));
    const b = await q.queue('B', 'b1', 1);
    await expectPositions(stack, q, a[0]!, [b, ...a.slice(1)]);
    expect(await q.startOrder([...a, b])).toEqual([a[0], b, ...a.slice(1)]);
  });

  it('serves high before normal before low, round-robin within a class', async () => {
    stack = await startStack({ config: { maxConcurrentTasks: 1 }, sim: { stepMs: 40 } });
    const q = await keysOn(stack, { X: 'normal', L: 'low', N: 'normal', H: 'high' });
    const x1 = await q.queue('X', 'x1', 100);
    const [l1, l2, x2, n1, n2, h1, h2] = [
      await q.queue('L', 'l1', 1),
      await q.queue('L', 'l2', 1),
      await q.queue('X', 'x2', 1),
      await q.queue('N', 'n1', 1),
      await q.queue('N', 'n2', 1),
      await q.queue('H', 'h1', 1),
      await q.queue('H', 'h2', 1),
    ];
    // X was served (x1 runs), N never: N's first goes before X's second, then they alternate.
    const expected = [h1!, h2!, n1!, x2!, n2!, l1!, l2!];
    await expectPositions(stack, q, x1, expected);
    expect(await q.startOrder([x1, ...expected])).toEqual([x1, ...expected]);
  });

  it('QUEUE_POLICY=fifo keeps the oldest first, across keys', async () => {
    stack = await startStack({ config: { maxConcurrentTasks: 1, queuePolicy: 'fifo' }, sim: { stepMs: 40 } });
    const q = await keysOn(stack, { A: 'normal', B: 'high' });
    const a = [await q.queue('A', 'a1', 100), await q.queue('A', 'a2', 1), await q.queue('A', 'a3', 1)];
    const b = await q.queue('B', 'b1', 1);
    await until('the positions to be announced', async () => (await announced(stack!, b)) === 3, 30_000);
    expect(await q.startOrder([...a, b])).toEqual([...a, b]);
  });
});

describe('task ids', () => {
  it('sort in the order they were made, also many in one millisecond (UUID v7, monotonic)', () => {
    const now = Date.UTC(2026, 11, 6, 12);
    const ids = Array.from({ length: 5000 }, () => newTaskId(now));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids.slice(0, 10)) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // The clock going back does not make an id sort before earlier ones.
    const later = newTaskId(now - 1000);
    expect(later > ids.at(-1)!).toBe(true);
  });
});
