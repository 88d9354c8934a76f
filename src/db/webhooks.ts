/**
 * Queries on `webhook_outbox`: the only module that writes SQL for it. Rows are inserted by the
 * transitions (in their transaction), claimed and finished by the deliverer, listed and redelivered
 * by `kontext webhooks`.
 */
import { sql } from 'kysely';
import type { Db } from './database.js';
import { dialectOf } from './dialect.js';
import type { NewWebhook, WebhookOutboxTable, WebhookRow } from './types.js';
import type { Updateable } from 'kysely';

/** The next ordinal of a task's events (call after the transition locked the task row). */
export async function nextWebhookOrdinal(trx: Db, taskId: string): Promise<number> {
  const row = await trx
    .selectFrom('webhook_outbox')
    .select((eb) => eb.fn.max('ordinal').as('last'))
    .where('task_id', '=', taskId)
    .executeTakeFirst();
  return Number(row?.last ?? 0) + 1;
}

/** Inserts outbox rows (inside the transition's transaction). */
export async function insertWebhooks(trx: Db, rows: readonly NewWebhook[]): Promise<void> {
  if (rows.length === 0) return;
  await trx.insertInto('webhook_outbox').values([...rows]).execute();
}

/**
 * Leases up to `limit` due rows to `instance` until `leaseUntil`: pending, due, not leased (or the
 * lease lapsed), and with no earlier pending event of the same task to the same target (events of
 * one task arrive in order). One transaction; on PostgreSQL `for update skip locked` lets several
 * replicas claim at once, each taking other rows.
 */
export async function claimDueWebhooks(db: Db, options: { instance: string; now: string; leaseUntil: string; limit: number }): Promise<WebhookRow[]> {
  if (options.limit <= 0) return [];
  return db.transaction().execute(async (trx) => {
    const postgres = dialectOf(trx) === 'postgres';
    const due = await trx
      .selectFrom('webhook_outbox as w')
      .select('w.id')
      .where('w.status', '=', 'pending')
      .where('w.next_attempt_at', '<=', options.now)
      .where((eb) => eb.or([eb('w.lease_expires_at', 'is', null), eb('w.lease_expires_at', '<', options.now)]))
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('webhook_outbox as e')
              .select('e.id')
              .whereRef('e.task_id', '=', 'w.task_id')
              .whereRef('e.url', '=', 'w.url')
              .whereRef('e.ordinal', '<', 'w.ordinal')
              .where('e.status', '=', 'pending'),
          ),
        ),
      )
      .orderBy('w.next_attempt_at')
      .limit(options.limit)
      .$if(postgres, (q) => q.forUpdate().skipLocked())
      .execute();
    if (due.length === 0) return [];
    return trx
      .updateTable('webhook_outbox')
      .set({ leased_by: options.instance, lease_expires_at: options.leaseUntil })
      .where(
        'id',
        'in',
        due.map((r) => r.id),
      )
      .returningAll()
      .execute();
  });
}

/** Records an attempt's outcome while `instance` still holds the lease; false when it lost it. */
export async function finishWebhookAttempt(db: Db, id: string, instance: string, changes: Updateable<WebhookOutboxTable>): Promise<boolean> {
  const r = await db
    .updateTable('webhook_outbox')
    .set((eb) => ({ ...changes, attempts: eb('attempts', '+', 1), leased_by: null, lease_expires_at: null }))
    .where('id', '=', id)
    .where('leased_by', '=', instance)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Options of {@link listWebhooks}. */
export interface WebhookListOptions {
  /** Only this task's events. @default every task */
  taskId?: string;
  /** Only events whose last attempt failed (given up, stopped by a 410, or still retrying). @default false */
  failed?: boolean;
  /** @default 100 */
  limit?: number;
}

/** Outbox rows, newest first (a task's events in their order). */
export async function listWebhooks(db: Db, options: WebhookListOptions = {}): Promise<WebhookRow[]> {
  let q = db.selectFrom('webhook_outbox').selectAll();
  if (options.taskId !== undefined) q = q.where('task_id', '=', options.taskId);
  if (options.failed) q = q.where((eb) => eb.or([eb('status', '=', 'failed'), eb.and([eb('status', '=', 'pending'), eb('attempts', '>', 0)])]));
  return q
    .orderBy('created_at', 'desc')
    .orderBy('task_id')
    .orderBy('ordinal', 'desc')
    .orderBy('id')
    .limit(options.limit ?? 100)
    .execute();
}

/** One row by its id (the webhook-id). */
export async function findWebhook(db: Db, id: string): Promise<WebhookRow | undefined> {
  return db.selectFrom('webhook_outbox').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Makes an event due again now, with a new retry window (same id, same body); undefined when there is no such row. */
export async function redeliverWebhook(db: Db, id: string, now: string): Promise<WebhookRow | undefined> {
  return db
    .updateTable('webhook_outbox')
    .set({ status: 'pending', next_attempt_at: now, retry_since: now, finished_at: null, leased_by: null, lease_expires_at: null })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** Deletes delivered or given-up rows finished before `cutoff`; returns how many. */
export async function deleteFinishedWebhooks(db: Db, cutoff: string): Promise<number> {
  const r = await db.deleteFrom('webhook_outbox').where('status', '!=', 'pending').where('finished_at', '<', cutoff).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** Pending rows (for tests and `kontext webhooks list`'s summary). */
export async function countPendingWebhooks(db: Db): Promise<number> {
  const { n } = await db
    .selectFrom('webhook_outbox')
    .select(sql<number>`count(*)`.as('n'))
    .where('status', '=', 'pending')
    .executeTakeFirstOrThrow();
  return Number(n);
}
