/**
 * The fair queue order (QUEUE_POLICY=fair): round-robin across the owners (API keys) with pending
 * work, a higher priority class entirely before a lower one. Within a class the owner served least
 * recently goes first (never served: before any served one); each owner's own tasks stay oldest
 * first. A pure function of what is pending and of each owner's priority and last start, so the
 * claim and the queue positions follow the very same order.
 */
import type { KeyPriority } from '../db/types.js';

/** Which task goes first: `fair` (this order) or `fifo` (oldest first, as before keys existed). */
export type QueuePolicy = 'fair' | 'fifo';

/** A pending task, as the order needs it. */
export interface QueuedTask {
  id: string;
  /** ISO time: orders an owner's own tasks (then `id`). */
  createdAt: string;
  /** The API key that made it; null for the open service's tasks (counted as one owner). */
  owner: string | null;
}

/** What the order knows of an owner with pending work. */
export interface QueueOwner {
  /** @default 'normal' (the open service's owner, or a key that is gone) */
  priority?: KeyPriority;
  /** ISO time the owner's latest task started; null or absent: never served. */
  lastServedAt?: string | null;
}

const RANK: Record<KeyPriority, number> = { high: 0, normal: 1, low: 2 };

/** Orders `(createdAt, id)` ascending. */
function byAge(a: QueuedTask, b: QueuedTask): number {
  return a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Ids of `tasks` in the order they would start: by priority class, then in rounds; each round takes
 * the oldest task of every owner of the class, owners least recently served first (ties: the owner
 * whose oldest task is older). An owner missing from `owners` has priority normal, never served.
 */
export function fairOrder(tasks: readonly QueuedTask[], owners: ReadonlyMap<string | null, QueueOwner>): string[] {
  const queues = new Map<string | null, QueuedTask[]>();
  for (const task of [...tasks].sort(byAge)) {
    const queue = queues.get(task.owner);
    if (queue) queue.push(task);
    else queues.set(task.owner, [task]);
  }
  // Serving an owner makes it the most recently served: a class's rounds keep its first order.
  const ranked = [...queues].map(([owner, queue]) => {
    const info = owners.get(owner);
    return { rank: RANK[info?.priority ?? 'normal'], last: info?.lastServedAt ?? '', head: queue[0]!, queue };
  });
  ranked.sort((a, b) => a.rank - b.rank || (a.last < b.last ? -1 : a.last > b.last ? 1 : byAge(a.head, b.head)));
  const order: string[] = [];
  for (let start = 0; start < ranked.length; ) {
    let end = start;
    while (end < ranked.length && ranked[end]!.rank === ranked[start]!.rank) end++;
    const cls = ranked.slice(start, end);
    const rounds = Math.max(...cls.map((o) => o.queue.length));
    for (let round = 0; round < rounds; round++) {
      for (const o of cls) {
        const task = o.queue[round];
        if (task) order.push(task.id);
      }
    }
    start = end;
  }
  return order;
}
