/**
 * Per-key limits and the global ceiling on queued tasks, on the real service over SQLite and
 * PostgreSQL: each refuses with its limit and a Retry-After, stores nothing, and frees up again
 * (a task ends; a window passes: rows are aged in the database rather than waited for). On
 * PostgreSQL two replicas creating at once never both take the last free place.
 */
import { Readable } from 'node:stream';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { callerOfKey, OPEN_CALLER, type Caller } from '../src/auth/caller.js';
import { createApiKey, type NewKeyOptions } from '../src/auth/create-api-key.js';
import type { Db } from '../src/db/database.js';
import { insertTask } from '../src/db/tasks.js';
import type { GenerateParams } from '../src/tasks/generate-params.js';
import { QuotaExceededError } from '../src/tasks/quota-exceeded-error.js';
import type { StoredUpload } from '../src/uploads/upload-sink.js';
import { forEachDialect, serviceDatabase, type DialectContext } from './helpers/databases.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, type Stack } from './helpers/stack.js';
import type { Config } from '../src/config.js';

const params = (count = 1, steps = 1): GenerateParams => ({ description: 'quota', count, size: '256x256', steps, guidance: 2.5, seed: 3, idempotencyKey: undefined });

/** Rows in `tasks` and `images`: a refused request must add none. */
async function rowCounts(db: Db): Promise<{ tasks: number; images: number }> {
  const count = async (table: 'tasks' | 'images') => Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  return { tasks: await count('tasks'), images: await count('images') };
}

/** Stores a finished task of `owner` created `ageS` seconds ago (history the windows count). */
async function pastTask(db: Db, owner: string, ageS: number, count = 1): Promise<string> {
  const at = new Date(Date.now() - ageS * 1000).toISOString();
  const id = `past-${owner}-${ageS}-${Math.random().toString(36).slice(2)}`;
  await insertTask(db, { id, description: 'past', status: 'completed', created_at: at, updated_at: at, count, owner_key_id: owner });
  return id;
}

/** Moves tasks' creation `ageS` seconds into the past: their window passes without waiting. */
async function age(db: Db, ids: string[], ageS: number): Promise<void> {
  await db.updateTable('tasks').set({ created_at: new Date(Date.now() - ageS * 1000).toISOString() }).where('id', 'in', ids).execute();
}

/** The refusal `attempt` must end in, with nothing stored meanwhile (counted before it starts). */
async function refused(db: Db, attempt: () => Promise<unknown>): Promise<QuotaExceededError> {
  const before = await rowCounts(db);
  const err = await attempt().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(QuotaExceededError);
  expect(await rowCounts(db)).toEqual(before);
  return err as QuotaExceededError;
}

forEachDialect('limits on generate', (ctx: DialectContext) => {
  let stack: Stack | undefined;
  let upload: StoredUpload;
  /** Starts the service on this test's database. */
  const start = async (config: Partial<Config>) => {
    stack = await startStack({ config: { ...serviceDatabase(ctx.database.target), ...config } });
    upload = await stack.app.service.storeReference(Readable.from(await makeImage('png', 320, 240)));
    return stack.app;
  };
  const key = async (options: Omit<NewKeyOptions, 'name'>): Promise<Caller> => callerOfKey((await createApiKey(stack!.app.db, { name: 'k', ...options })).row);
  beforeEach(() => {
    stack = undefined;
  });
  afterEach(async () => {
    await stack?.close();
  });

  it('max_concurrent counts pending and processing tasks; a slot frees when one ends', async () => {
    const app = await start({ maxConcurrentTasks: 1 });
    const caller = await key({ maxConcurrent: 2 });
    // The first runs a while (the simulator's 10 ms per step), the second waits behind it.
    const first = await app.service.createTask(params(1, 300), upload, caller);
    await app.service.createTask(params(), upload, caller);
    const err = await refused(app.db, () => app.service.createTask(params(), upload, caller));
    expect(err).toMatchObject({ limit: 'max_concurrent', retryAfterSeconds: 5 });
    expect(err.message).toMatch(/max_concurrent.*limit is 2/);
    await expect(app.service.checkLimits(caller)).rejects.toMatchObject({ limit: 'max_concurrent' });
    // Other keys and the open service are not held back by it.
    await app.service.checkLimits(await key({ maxConcurrent: 1 }));
    await app.service.checkLimits(OPEN_CALLER);
    await until('the first task to end', async () => (await app.service.getTask(first.task.id, caller))!.task.status === 'completed', 60_000);
    await app.service.checkLimits(caller);
    expect((await app.service.createTask(params(), upload, caller)).task.status).toBe('pending');
  });

  it('rate counts the tasks created in the last 60 s and says when the oldest leaves the window', async () => {
    const app = await start({ maxConcurrentTasks: 1 });
    const caller = await key({ ratePerMinute: 2 });
    // Older than the window: not counted.
    await pastTask(app.db, caller.keyId!, 61);
    await pastTask(app.db, caller.keyId!, 3600);
    const recent = await pastTask(app.db, caller.keyId!, 50);
    const made = await app.service.createTask(params(), upload, caller);
    const err = await refused(app.db, () => app.service.createTask(params(), upload, caller));
    expect(err.limit).toBe('rate');
    expect(err.message).toMatch(/rate.*limit is 2 per minute/);
    // The task of 50 s ago leaves the window in about 10 s (less, as the test runs).
    expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(err.retryAfterSeconds).toBeLessThanOrEqual(10);
    await expect(app.service.checkLimits(caller)).rejects.toMatchObject({ limit: 'rate' });
    await age(app.db, [recent], 61);
    await app.service.createTask(params(), upload, caller);
    // Full again: now the oldest counted is the one made above, seconds ago (about 60 s to wait).
    const again = await refused(app.db, () => app.service.createTask(params(), upload, caller));
    expect(again.retryAfterSeconds).toBeGreaterThan(30);
    expect(again.retryAfterSeconds).toBeLessThanOrEqual(60);
    await age(app.db, [made.task.id], 120);
    await app.service.createTask(params(), upload, caller);
  });

  it('images_per_day counts the images of the last 24 hours, this request included', async () => {
    const app = await start({ maxConcurrentTasks: 1 });
    const caller = await key({ imagesPerDay: 5 });
    await pastTask(app.db, caller.keyId!, 25 * 3600, 4); // outside the window
    const old = await pastTask(app.db, caller.keyId!, 23 * 3600, 2);
    await pastTask(app.db, caller.keyId!, 3600, 1);
    // 3 in the window: 3 more do not fit until the one of 23 hours ago (2 images) leaves, in about an hour.
    const err = await refused(app.db, () => app.service.createTask(params(3), upload, caller));
    expect(err.limit).toBe('images_per_day');
    expect(err.message).toMatch(/images_per_day.*3 images.*adds 3.*limit is 5/);
    expect(err.retryAfterSeconds).toBeGreaterThan(3000);
    expect(err.retryAfterSeconds).toBeLessThanOrEqual(3600);
    // A request larger than the whole allowance never fits.
    expect((await refused(app.db, () => app.service.createTask(params(4), upload, caller))).limit).toBe('images_per_day');
    await app.service.createTask(params(2), upload, caller);
    await expect(app.service.checkLimits(caller)).rejects.toMatchObject({ limit: 'images_per_day' });
    await age(app.db, [old], 24 * 3600 + 1);
    await app.service.checkLimits(caller);
    await app.service.createTask(params(2), upload, caller);
    const small = await key({ imagesPerDay: 3 });
    const tooMany = await refused(app.db, () => app.service.createTask(params(4), upload, small));
    expect(tooMany.message).toMatch(/asks for 4 images.*limit is 3/);
  });

  it('MAX_QUEUED_TASKS refuses every key and the open service once that many tasks are pending', async () => {
    // Nothing is claimed (0 at once): every task stays pending.
    const app = await start({ maxConcurrentTasks: 0, maxQueuedTasks: 2 });
    await app.service.createTask(params(), upload, OPEN_CALLER);
    const second = await app.service.createTask(params(), upload, await key({}));
    const err = await refused(app.db, () => app.service.createTask(params(), upload, OPEN_CALLER));
    expect(err).toMatchObject({ limit: 'max_queued_tasks', retryAfterSeconds: 10 });
    expect(err.message).toMatch(/MAX_QUEUED_TASKS\) is 2/);
    expect((await refused(app.db, async () => app.service.createTask(params(), upload, await key({ priority: 'high' })))).limit).toBe('max_queued_tasks');
    await expect(app.service.checkLimits(OPEN_CALLER)).rejects.toMatchObject({ limit: 'max_queued_tasks' });
    await app.service.cancelTask(second.task.id, OPEN_CALLER);
    await app.service.createTask(params(), upload, OPEN_CALLER);
  });
});

forEachDialect(
  'limits across replicas',
  (ctx: DialectContext) => {
    const stacks: Stack[] = [];
    afterEach(async () => {
      await Promise.all(stacks.splice(0).map((s) => s.close()));
    });

    it('two replicas creating at once never both take the last free place', async () => {
      const config = { ...serviceDatabase(ctx.database.target), maxConcurrentTasks: 0, maxQueuedTasks: 9 };
      for (const instance of ['replica-a', 'replica-b']) stacks.push(await startStack({ config, app: { instance } }));
      const [a, b] = stacks.map((s) => s.app) as [Stack['app'], Stack['app']];
      const image = await makeImage('png', 320, 240);
      const ua = await a.service.storeReference(Readable.from(image));
      const ub = await b.service.storeReference(Readable.from(image));
      const race = async (ca: Caller, cb: Caller) => {
        const results = await Promise.allSettled([a.service.createTask(params(), ua, ca), b.service.createTask(params(), ub, cb)]);
        const refusals = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
        expect(refusals).toHaveLength(1);
        expect(refusals[0]).toBeInstanceOf(QuotaExceededError);
        return (refusals[0] as QuotaExceededError).limit;
      };
      // One place per key (max_concurrent 1), raced for eight times.
      for (let round = 0; round < 8; round++) {
        const caller = callerOfKey((await createApiKey(a.db, { name: `k${round}`, maxConcurrent: 1 })).row);
        expect(await race(caller, caller)).toBe('max_concurrent');
      }
      // 8 pending: the ceiling of 9 leaves one place for everyone.
      expect(await race(OPEN_CALLER, OPEN_CALLER)).toBe('max_queued_tasks');
      expect((await rowCounts(a.db)).tasks).toBe(9);
    });
  },
  ['postgres'],
);
