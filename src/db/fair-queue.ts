/**
 * Reads of the fair queue order (QUEUE_POLICY=fair) from `tasks`: its head, for claims, and the
 * whole order, kept per database handle for queue positions. The order itself is the pure function
 * in src/tasks/fair-order.ts; this module reads what it needs and decides when to read it again.
 */
import { sql } from 'kysely';
import type { Db } from './database.js';
import { fairOrder, type QueueOwner } from '../tasks/fair-order.js';
import type { KeyPriority } from './types.js';

/**
 * The first task of the fair order that is still pending; on PostgreSQL (`postgres`), the first
 * whose row no one else holds. Only each owner's oldest pending task can be first, so it orders
 * those (one row per owner with pending work) instead of reading every pending task (16 ms with
 * 10 000 queued, most of a claim); on PostgreSQL a head another transaction holds falls back to the
 * whole order.
 */
export async function fairHead(trx: Db, postgres: boolean): Promise<string | undefined> {
  const owners = await queueOwners(trx);
  const heads = owners.flatMap((o) => (o.head_id === null || o.head_created === null ? [] : [{ id: o.head_id, createdAt: o.head_created, owner: o.owner }]));
  const head = fairOrder(heads, ownerMap(owners))[0];
  if (!postgres || head === undefined) return head;
  for (const id of [head, ...(await fairPendingIds(trx)).filter((i) => i !== head)]) {
    // Locks only the row it takes: a cancel holding the head makes the claim take the next one.
    const row = await trx.selectFrom('tasks').select('id').where('id', '=', id).where('status', '=', 'pending').forUpdate().skipLocked().executeTakeFirst();
    if (row) return row.id;
  }
  return undefined;
}

/** An owner with pending work: its priority, latest start and oldest pending task. */
interface OwnerRow {
  owner: string | null;
  priority: KeyPriority | null;
  last_served: string | null;
  head_id: string | null;
  head_created: string | null;
}

/** One row per owner with pending work (index probes on tasks_owner_started and tasks_owner_status each). */
async function queueOwners(db: Db): Promise<OwnerRow[]> {
  const rows = await sql<OwnerRow>`
    select o.owner_key_id as owner, k.priority as priority,
      case when o.owner_key_id is null
        then (select max(t.started_at) from tasks t where t.owner_key_id is null)
        else (select max(t.started_at) from tasks t where t.owner_key_id = o.owner_key_id)
      end as last_served,
      case when o.owner_key_id is null
        then (select t.id from tasks t where t.owner_key_id is null and t.status = 'pending' order by t.created_at, t.id limit 1)
        else (select t.id from tasks t where t.owner_key_id = o.owner_key_id and t.status = 'pending' order by t.created_at, t.id limit 1)
      end as head_id
    from (select distinct owner_key_id from tasks where status = 'pending') o
    left join api_keys k on k.id = o.owner_key_id`.execute(db);
  const heads = rows.rows.map((r) => r.head_id).filter((id): id is string => id !== null);
  const created = new Map(heads.length === 0 ? [] : (await db.selectFrom('tasks').select(['id', 'created_at']).where('id', 'in', heads).execute()).map((t) => [t.id, t.created_at]));
  return rows.rows.map((r) => ({ ...r, head_created: r.head_id === null ? null : (created.get(r.head_id) ?? null) }));
}

function ownerMap(rows: readonly OwnerRow[]): Map<string | null, QueueOwner> {
  return new Map(rows.map((r) => [r.owner, { priority: r.priority ?? 'normal', lastServedAt: r.last_served }]));
}

/**
 * Pending task ids in fair order. Reads the pending tasks, then one row per owner with pending work
 * (its priority, its latest start and its oldest pending task).
 */
async function fairPendingIds(db: Db): Promise<string[]> {
  const tasks = await db.selectFrom('tasks').select(['id', 'created_at', 'owner_key_id']).where('status', '=', 'pending').orderBy('created_at').orderBy('id').execute();
  if (tasks.length === 0) return [];
  return fairOrder(
    tasks.map((t) => ({ id: t.id, createdAt: t.created_at, owner: t.owner_key_id })),
    ownerMap(await queueOwners(db)),
  );
}

/**
 * Bumped whenever this process adds, claims or ends a pending task: every kept fair order is stale
 * then, that of each database handle. One counter for the process, not one per handle, because
 * the changes mostly come through transactions (claims, status frames), which are other Kysely
 * objects than the handle whose order is kept, with no public way back to it. Harmless: a change on
 * one handle costs the others one extra read of the order, never an order older than KEPT_ORDER_MS
 * (only tests and benches open several handles in one process).
 */
let queueGeneration = 0;

/** Marks the kept fair orders stale: call it on every change to what is pending. */
export function queueChanged(): void {
  queueGeneration++;
}

/** How long a kept fair order serves reads when this process changed nothing. */
const KEPT_ORDER_MS = 1000;

/** The fair order kept per database handle: the ids, and each id's index. */
const keptOrders = new WeakMap<Db, { generation: number; at: number; ids: string[]; index: Map<string, number> }>();

/**
 * The fair order, read again only when this process changed the queue, after KEPT_ORDER_MS, or
 * when `fresh` (@default false). With 10 000 queued a full read costs ~16 ms of SQLite and ~2 ms
 * of ordering, on every status read of a pending task. Another replica's enqueue, claim or cancel
 * shows here within KEPT_ORDER_MS: safe, because positions are advisory (what a client is told),
 * never what a claim goes by (claims read the database in their transaction).
 */
export async function keptFairOrder(db: Db, fresh = false): Promise<{ ids: string[]; index: Map<string, number> }> {
  const kept = keptOrders.get(db);
  if (!fresh && kept && kept.generation === queueGeneration && Date.now() - kept.at < KEPT_ORDER_MS) return kept;
  const generation = queueGeneration;
  const at = Date.now();
  const ids = await fairPendingIds(db);
  const order = { generation, at, ids, index: new Map(ids.map((id, i) => [id, i])) };
  // Kept only if nothing changed while it was read.
  if (generation === queueGeneration) keptOrders.set(db, order);
  return order;
}
