/**
 * Queries on `tasks`: with the fair queue's reads (fair-queue.ts), the only module that writes SQL
 * for that table. Status changes are called only from the transitions (src/tasks/transitions/),
 * each inside its own transaction.
 */
import { sql, type CompiledQuery } from 'kysely';
import type { Db } from './database.js';
import { dialectOf } from './dialect.js';
import { fairHead, keptFairOrder, queueChanged } from './fair-queue.js';
import type { QueuePolicy } from '../tasks/fair-order.js';
import { ReusedQuery } from './reused-query.js';
import { FINAL_TASK_STATUSES, type NewTask, type TaskRow, type TaskStatus, type TaskUpdate } from './types.js';

/** Inserts a new task. */
export async function insertTask(db: Db, task: NewTask): Promise<TaskRow> {
  if (task.status === 'pending') queueChanged();
  return db.insertInto('tasks').values(task).returningAll().executeTakeFirstOrThrow();
}

const taskById = new ReusedQuery<TaskRow>();

/** The task with id `id` (compiled once: every status read and GraphQL `task` starts here). */
export async function findTask(db: Db, id: string): Promise<TaskRow | undefined> {
  const rows = await taskById.run(db, 'id', [id], () => db.selectFrom('tasks').selectAll().where('id', '=', id));
  return rows[0];
}

/** The task `owner` made with idempotency key `key` (owner null: the open service's tasks). */
export async function findTaskByIdempotencyKey(db: Db, key: string, owner: string | null): Promise<TaskRow | undefined> {
  return db
    .selectFrom('tasks')
    .selectAll()
    .where('idempotency_key', '=', key)
    .where('owner_key_id', owner === null ? 'is' : '=', owner)
    .executeTakeFirst();
}

const taskPage = new ReusedQuery<TaskRow>();

/**
 * A page of tasks, newest first, after the `(created_at, id)` of the cursor's task; with `owner`,
 * only the tasks of that API key. Compiled once per combination of owner, status and cursor.
 */
export async function listTasks(
  db: Db,
  options: { limit: number; after?: { createdAt: string; id: string }; status?: TaskStatus; owner?: string },
): Promise<TaskRow[]> {
  const { owner, status, after, limit } = options;
  // In the order the query below puts them in its SQL (checked when it is first compiled).
  const parameters: unknown[] = [];
  if (owner !== undefined) parameters.push(owner);
  if (status) parameters.push(status);
  if (after) parameters.push(after.createdAt, after.createdAt, after.id);
  parameters.push(limit);
  const shape = `${owner !== undefined ? 'owner,' : ''}${status ? 'status,' : ''}${after ? 'after,' : ''}limit`;
  return taskPage.run(db, shape, parameters, () => {
    let q = db.selectFrom('tasks').selectAll();
    if (owner !== undefined) q = q.where('owner_key_id', '=', owner);
    if (status) q = q.where('status', '=', status);
    if (after) {
      q = q.where((eb) => eb.or([eb('created_at', '<', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)])]));
    }
    return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit);
  });
}

/**
 * Key of the transaction-scoped advisory lock that serializes claims across replicas on PostgreSQL
 * (any constant; "kont" in ASCII). Only claims take it.
 */
const CLAIM_LOCK_KEY = 0x6b6f6e74;

/**
 * Moves the task at the head of the queue (`policy`: fair order, or the oldest) to `processing` if
 * fewer than `maxProcessing` are. Call it inside a transaction (the claim transition does). SQLite
 * runs the transaction alone (`begin immediate`). On PostgreSQL, several replicas claim at once: an
 * advisory lock held until the transaction ends makes count-then-claim one step across replicas
 * (otherwise two could both see one free place and both claim), and `for update skip locked` passes
 * over a pending row that another transaction is changing (a cancel) instead of waiting for it.
 */
export async function claimNextPending(
  trx: Db,
  options: { instance: string; now: string; leaseUntil: string; maxProcessing: number; /** @default 'fair' */ policy?: QueuePolicy },
): Promise<TaskRow | undefined> {
  const postgres = dialectOf(trx) === 'postgres';
  if (postgres) await sql`select pg_advisory_xact_lock(${sql.lit(CLAIM_LOCK_KEY)})`.execute(trx);
  const { n } = await trx
    .selectFrom('tasks')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', '=', 'processing')
    .executeTakeFirstOrThrow();
  if (Number(n) >= options.maxProcessing) return undefined;
  const next = (options.policy ?? 'fair') === 'fifo' ? await oldestPending(trx, postgres) : await fairHead(trx, postgres);
  if (!next) return undefined;
  queueChanged();
  return trx
    .updateTable('tasks')
    .set({
      status: 'processing',
      started_at: options.now,
      updated_at: options.now,
      claimed_by: options.instance,
      lease_expires_at: options.leaseUntil,
    })
    .where('id', '=', next)
    .where('status', '=', 'pending')
    .returningAll()
    .executeTakeFirst();
}

/** The oldest pending task's id (fifo), skipping rows another transaction holds on PostgreSQL. */
async function oldestPending(trx: Db, postgres: boolean): Promise<string | undefined> {
  const row = await trx
    .selectFrom('tasks')
    .select('id')
    .where('status', '=', 'pending')
    .orderBy('created_at')
    .orderBy('id')
    .limit(1)
    .$if(postgres, (q) => q.forUpdate().skipLocked())
    .executeTakeFirst();
  return row?.id;
}

/**
 * The task, with its row locked until the transaction ends on PostgreSQL (`for update`), so that
 * transitions of one task run one after the other there as they do on SQLite: e.g. two images
 * completing at once each see the other's image done, and one of them completes the task. A plain
 * read on SQLite, whose transactions already run alone.
 */
export async function lockTask(trx: Db, id: string): Promise<TaskRow | undefined> {
  return trx
    .selectFrom('tasks')
    .selectAll()
    .where('id', '=', id)
    .$if(dialectOf(trx) === 'postgres', (q) => q.forUpdate())
    .executeTakeFirst();
}

/**
 * Processing tasks this instance must look after: its own, and any whose claim has lapsed. Inside a
 * transaction on PostgreSQL the rows stay locked until it ends (`for update skip locked`): two
 * replicas taking over at once split the tasks instead of both adopting the same one.
 */
export async function findRecoverable(db: Db, options: { instance: string; now: string }): Promise<TaskRow[]> {
  return db
    .selectFrom('tasks')
    .selectAll()
    .where('status', '=', 'processing')
    .where((eb) => eb.or([eb('claimed_by', '=', options.instance), eb('claimed_by', 'is', null), eb('lease_expires_at', '<', options.now)]))
    .orderBy('created_at')
    .$if(dialectOf(db) === 'postgres', (q) => q.forUpdate().skipLocked())
    .execute();
}

/** Takes over tasks (after a crash, or another instance's lapsed claim). */
export async function reclaim(db: Db, ids: readonly string[], options: { instance: string; leaseUntil: string }): Promise<void> {
  if (ids.length === 0) return;
  await db.updateTable('tasks').set({ claimed_by: options.instance, lease_expires_at: options.leaseUntil }).where('id', 'in', ids).execute();
}

/**
 * Drops a processing task's claim when it is still the one observed (holder and lease), so that
 * recovery can take over at once from an instance known to be gone. False when the claim changed.
 */
export async function releaseClaim(db: Db, id: string, observed: { claimedBy: string | null; leaseExpiresAt: string | null }): Promise<boolean> {
  const r = await db
    .updateTable('tasks')
    .set({ claimed_by: null, lease_expires_at: null })
    .where('id', '=', id)
    .where('status', '=', 'processing')
    .where('claimed_by', observed.claimedBy === null ? 'is' : '=', observed.claimedBy)
    .where('lease_expires_at', observed.leaseExpiresAt === null ? 'is' : '=', observed.leaseExpiresAt)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Records that a processing task is to be cancelled (by the replica running it); false when it is not processing. */
export async function markCancelRequested(db: Db, id: string, at: string): Promise<boolean> {
  const r = await db.updateTable('tasks').set({ cancel_requested_at: at }).where('id', '=', id).where('status', '=', 'processing').executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Ids of this instance's processing tasks whose cancel another replica requested. */
export async function cancelRequestedIds(db: Db, instance: string): Promise<string[]> {
  const rows = await db
    .selectFrom('tasks')
    .select('id')
    .where('status', '=', 'processing')
    .where('claimed_by', '=', instance)
    .where('cancel_requested_at', 'is not', null)
    .execute();
  return rows.map((r) => r.id);
}

/** Extends this instance's claims; returns the ids of the tasks it still holds. */
export async function renewLeases(db: Db, options: { instance: string; leaseUntil: string }): Promise<string[]> {
  const rows = await db
    .updateTable('tasks')
    .set({ lease_expires_at: options.leaseUntil })
    .where('status', '=', 'processing')
    .where('claimed_by', '=', options.instance)
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

const frameWrite = new ReusedQuery<{ seq: number }>();

/**
 * Persists a progress frame: applies `changes`, bumps `seq` and stores the frame as the snapshot, in
 * one statement, so the seq a subscriber sees always matches the stored state. Returns the new seq,
 * or undefined when the task is gone or (with `onlyIf`) not in one of those statuses. Compiled once
 * per shape (the columns changed, `onlyIf`, a holder): built and compiled per frame, the statement
 * took ~0.3 ms of each step's way from ComfyUI to the subscribers in the fan-out bench's trace.
 */
export async function saveFrame(
  db: Db,
  id: string,
  changes: TaskUpdate,
  frame: unknown,
  onlyIf?: readonly TaskStatus[],
  holder?: string,
): Promise<number | undefined> {
  if (changes.status !== undefined) queueChanged();
  // Kysely leaves undefined values out of the SET: so does the shape, and so do the parameters.
  const set = Object.entries(changes).filter(([, v]) => v !== undefined);
  const lastFrame = JSON.stringify(frame);
  // In the order the query below puts them in its SQL (checked when it is first compiled).
  const parameters: unknown[] = set.map(([, v]) => v);
  parameters.push(lastFrame, id);
  if (onlyIf) parameters.push(...onlyIf);
  if (holder !== undefined) parameters.push(holder);
  const shape = `${set.map(([k]) => k).join(',')}|${onlyIf?.join(',') ?? '*'}|${holder !== undefined ? 'holder' : ''}`;
  const rows = await frameWrite.run(db, shape, parameters, () => {
    let q = db
      .updateTable('tasks')
      .set({ ...Object.fromEntries(set), seq: sql<number>`seq + 1`, last_frame: lastFrame })
      .where('id', '=', id);
    if (onlyIf) q = q.where('status', 'in', onlyIf);
    // A replica whose claim lapsed and was taken over must not write over the new holder's frames.
    if (holder !== undefined) q = q.where('claimed_by', '=', holder);
    return q.returning('seq');
  });
  return rows[0]?.seq;
}

/**
 * How many pending tasks are ahead of this one (0 = next) in `policy`'s order (@default 'fair'), or
 * undefined when it is not pending.
 */
export async function queuePosition(db: Db, task: Pick<TaskRow, 'id' | 'created_at' | 'status'>, policy: QueuePolicy = 'fair'): Promise<number | undefined> {
  if (task.status !== 'pending') return undefined;
  if (policy === 'fair') {
    // Claimed (or ended) since it was read: nothing is ahead of it any more.
    return (await keptFairOrder(db)).index.get(task.id) ?? 0;
  }
  const { n } = await db
    .selectFrom('tasks')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', '=', 'pending')
    .where((eb) => eb.or([eb('created_at', '<', task.created_at), eb.and([eb('created_at', '=', task.created_at), eb('id', '<', task.id)])]))
    .executeTakeFirstOrThrow();
  return Number(n);
}

/**
 * Pending tasks in queue order, `policy`'s (@default 'fair'): to announce new queue positions and
 * for positions in lists. The fair order comes from the kept one unless `fresh` (@default false):
 * announcements, which run once a change committed, read it again and keep that.
 */
export async function pendingTaskIds(db: Db, policy: QueuePolicy = 'fair', options: { fresh?: boolean } = {}): Promise<string[]> {
  if (policy === 'fair') return (await keptFairOrder(db, options.fresh)).ids;
  const rows = await db.selectFrom('tasks').select('id').where('status', '=', 'pending').orderBy('created_at').orderBy('id').execute();
  return rows.map((r) => r.id);
}

/** Counts per status. */
export async function countByStatus(db: Db): Promise<Record<TaskStatus, number>> {
  const rows = await db
    .selectFrom('tasks')
    .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy('status')
    .execute();
  const counts: Record<TaskStatus, number> = { pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 };
  for (const r of rows) if (r.status in counts) counts[r.status] = Number(r.n);
  return counts;
}

/**
 * Up to `limit` finished tasks that finished at or before `cutoff`, oldest first. One walk of the
 * tasks_queue index (status, created_at, id) per final status, bounded by `cutoff` on created_at
 * (a task is created before it finishes, so none is missed), each stopping after `limit` rows:
 * filtering on coalesce(finished_at, updated_at) and sorting, as before, read and sorted every
 * finished task on each batch (50-400 ms with 100 000 stored, blocking the event loop on SQLite).
 */
export async function findFinishedBefore(db: Db, cutoff: string, limit: number): Promise<Pick<TaskRow, 'id' | 'upload_sha256'>[]> {
  const found: Pick<TaskRow, 'id' | 'upload_sha256' | 'created_at'>[] = [];
  for (const status of FINAL_TASK_STATUSES) {
    found.push(
      ...(await db
        .selectFrom('tasks')
        .select(['id', 'upload_sha256', 'created_at'])
        .where('status', '=', status)
        .where('created_at', '<=', cutoff)
        .where(sql<string>`coalesce(finished_at, updated_at)`, '<=', cutoff)
        .orderBy('created_at')
        .orderBy('id')
        .limit(limit)
        .execute()),
    );
  }
  found.sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1));
  return found.slice(0, limit).map(({ id, upload_sha256 }) => ({ id, upload_sha256 }));
}

/** The statement that deletes tasks (`ids` not empty); their image rows go with them (foreign key cascade). Compiled, so cleanup can run it on a connection of its own (side-writer.ts). */
export function deleteTasksQuery(db: Db, ids: readonly string[]): CompiledQuery {
  return db.deleteFrom('tasks').where('id', 'in', ids).compile();
}

/** Tasks of the old service (no image rows) that recorded result paths, for the file check. */
export async function legacyResultPaths(db: Db): Promise<Pick<TaskRow, 'id' | 'result_path'>[]> {
  return db
    .selectFrom('tasks')
    .select(['id', 'result_path'])
    .where('result_path', 'is not', null)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('images').select('images.idx').whereRef('images.task_id', '=', 'tasks.id'))))
    .orderBy('created_at')
    .execute();
}

/** The paths in a `result_path` value: the old service stored a JSON list, some rows a plain path. */
export function resultPaths(raw: string | null): string[] {
  if (!raw) return [];
  try {
    const parsed: unknown = JSON.parse(raw);
    return Array.isArray(parsed) ? parsed.map(String) : [String(parsed)];
  } catch {
    return [raw];
  }
}
