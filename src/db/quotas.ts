/**
 * The counts the per-key limits and the global queue ceiling are checked against (the enqueue
 * transition decides; only this module writes that SQL). Each reads a key's rows through the index
 * `tasks_owner_status (owner_key_id, status, created_at)`, or the pending rows through `tasks_queue`.
 */
import { sql } from 'kysely';
import type { Db } from './database.js';
import { dialectOf } from './dialect.js';
import { TASK_STATUSES } from './types.js';

/**
 * Key of the transaction-scoped advisory lock that serializes enqueues across replicas on PostgreSQL
 * (any constant other than the claim's; "quot" in ASCII).
 */
const QUOTA_LOCK_KEY = 0x71756f74;

/**
 * Makes count-then-insert one step across replicas: on PostgreSQL waits for the advisory lock, held
 * until the transaction ends; on SQLite nothing (its write transactions already run alone).
 */
export async function lockQuotas(trx: Db): Promise<void> {
  if (dialectOf(trx) === 'postgres') await sql`select pg_advisory_xact_lock(${sql.lit(QUOTA_LOCK_KEY)})`.execute(trx);
}

/** Pending tasks of everyone (the MAX_QUEUED_TASKS ceiling). */
export async function countPending(db: Db): Promise<number> {
  const { n } = await db.selectFrom('tasks').select((eb) => eb.fn.countAll<number>().as('n')).where('status', '=', 'pending').executeTakeFirstOrThrow();
  return Number(n);
}

/** Pending plus processing tasks of one key (its max_concurrent). */
export async function countUnfinished(db: Db, owner: string): Promise<number> {
  const { n } = await db
    .selectFrom('tasks')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('owner_key_id', '=', owner)
    .where('status', 'in', ['pending', 'processing'])
    .executeTakeFirstOrThrow();
  return Number(n);
}

/** A key's tasks created after `since` (ISO), whatever became of them: how many, and their images. */
export async function createdSince(db: Db, owner: string, since: string): Promise<{ tasks: number; images: number }> {
  const row = await db
    .selectFrom('tasks')
    .select((eb) => [eb.fn.countAll<number>().as('tasks'), eb.fn.sum<number | null>('count').as('images')])
    .where('owner_key_id', '=', owner)
    // Every status listed: the index's second column, so the window is a range within each.
    .where('status', 'in', TASK_STATUSES)
    .where('created_at', '>', since)
    .executeTakeFirstOrThrow();
  return { tasks: Number(row.tasks), images: Number(row.images ?? 0) };
}

/**
 * A key's tasks created after `since`, oldest first, at most `limit`: when each leaves the window,
 * and how many images it frees then (to tell a refused caller when to try again).
 */
export async function oldestCreatedSince(db: Db, owner: string, since: string, limit: number): Promise<{ createdAt: string; images: number }[]> {
  const rows = await db
    .selectFrom('tasks')
    .select(['created_at', 'count'])
    .where('owner_key_id', '=', owner)
    .where('status', 'in', TASK_STATUSES)
    .where('created_at', '>', since)
    .orderBy('created_at')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ createdAt: r.created_at, images: Number(r.count) }));
}
