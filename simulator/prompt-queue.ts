/**
 * ComfyUI's PromptQueue: a heap ordered by `number` (Python's heapq, so `queue_pending` shows the
 * same heap order), the running item, and the in-memory history in completion order.
 */
import { PyFloat, type PyDict, type PyValue } from './py.js';

/** A queue item: `[number, prompt_id, prompt, extra_data, outputs_to_execute]` plus the sensitive keys. */
export interface QueueItem {
  number: number | PyFloat;
  promptId: string;
  prompt: PyDict;
  extraData: PyDict;
  outputs: string[];
  /** `auth_token_comfy_org` / `api_key_comfy_org`: shown in the queue, dropped from history. */
  sensitiveKeys: string[];
}

/** `{status_str, completed, messages}` of a history entry. */
export interface ExecutionStatus {
  statusStr: 'success' | 'error';
  completed: boolean;
  messages: Array<[string, PyDict]>;
}

/** One history entry (serialized as {prompt, outputs, status, meta}). */
export interface HistoryEntry {
  item: QueueItem;
  outputs: PyDict;
  meta: PyDict;
  status: ExecutionStatus;
}

/** ComfyUI keeps at most this many history entries (the oldest goes first). */
export const MAX_HISTORY = 10000;

function num(n: number | PyFloat): number {
  return n instanceof PyFloat ? n.value : n;
}

/** Tuple comparison of (number, prompt_id). */
function less(a: QueueItem, b: QueueItem): boolean {
  const na = num(a.number);
  const nb = num(b.number);
  if (na !== nb) return na < nb;
  return a.promptId < b.promptId;
}

/** The JSON array of a queue item. */
export function queueItemJson(item: QueueItem, withSensitive: boolean): PyValue[] {
  let extra: PyDict = item.extraData;
  if (!withSensitive && item.sensitiveKeys.length > 0) {
    extra = new Map([...item.extraData].filter(([k]) => !item.sensitiveKeys.includes(k)));
  }
  return [item.number, item.promptId, item.prompt, extra, [...item.outputs]];
}

/** Pending heap, running items and history, announcing every change of the count. */
export class PromptQueue {
  private heap: QueueItem[] = [];
  private running = new Map<number, QueueItem>();
  private taskCounter = 0;
  readonly history = new Map<string, HistoryEntry>();
  private waiters: Array<() => void> = [];

  constructor(private readonly onUpdate: () => void) {}

  /** `len(queue) + len(currently_running)`. */
  remaining(): number {
    return this.heap.length + this.running.size;
  }

  put(item: QueueItem): void {
    this.heap.push(item);
    this.siftDown(0, this.heap.length - 1);
    this.onUpdate();
    this.waiters.splice(0).forEach((w) => w());
  }

  /** Waits for an item and marks it running (one status update). */
  async get(signal: { closed: boolean }): Promise<{ item: QueueItem; taskId: number } | null> {
    while (this.heap.length === 0) {
      if (signal.closed) return null;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (signal.closed) return null;
    const item = this.heappop();
    const taskId = this.taskCounter++;
    this.running.set(taskId, item);
    this.onUpdate();
    return { item, taskId };
  }

  /** Wakes a waiting `get` (used on close). */
  wake(): void {
    this.waiters.splice(0).forEach((w) => w());
  }

  runningItems(): QueueItem[] {
    return [...this.running.values()];
  }

  pendingItems(): QueueItem[] {
    return [...this.heap];
  }

  /** Writes the history entry of a finished task and announces the new count. */
  taskDone(taskId: number, result: { outputs: PyDict; meta: PyDict }, status: ExecutionStatus): void {
    const item = this.running.get(taskId);
    this.running.delete(taskId);
    if (item) {
      if (this.history.size > MAX_HISTORY) {
        const oldest = this.history.keys().next();
        if (!oldest.done) this.history.delete(oldest.value);
      }
      // Assigning an existing key keeps its place, as in a Python dict.
      this.history.set(item.promptId, { item, outputs: result.outputs, meta: result.meta, status });
    }
    this.onUpdate();
  }

  /** `{"clear": true}`: empties the pending queue (always announces). */
  wipe(): void {
    this.heap = [];
    this.onUpdate();
  }

  /** Removes the first pending item with this id; announces once when something was removed. */
  deletePending(promptId: unknown): boolean {
    const i = this.heap.findIndex((it) => it.promptId === promptId);
    if (i < 0) return false;
    this.heap.splice(i, 1);
    this.heapify();
    this.onUpdate();
    return true;
  }

  /** `get_history` with ComfyUI's max_items/offset rules. */
  getHistory(maxItems: number | null, offset: number): Array<[string, HistoryEntry]> {
    const out: Array<[string, HistoryEntry]> = [];
    let off = offset;
    if (off < 0 && maxItems !== null) off = this.history.size - maxItems;
    let i = 0;
    for (const [k, v] of this.history) {
      if (i >= off) {
        out.push([k, v]);
        if (maxItems !== null && out.length >= maxItems) break;
      }
      i++;
    }
    return out;
  }

  // --- CPython heapq ---------------------------------------------------------------------------

  private heappop(): QueueItem {
    const last = this.heap.pop() as QueueItem;
    if (this.heap.length === 0) return last;
    const top = this.heap[0] as QueueItem;
    this.heap[0] = last;
    this.siftUp(0);
    return top;
  }

  private heapify(): void {
    for (let i = Math.floor(this.heap.length / 2) - 1; i >= 0; i--) this.siftUp(i);
  }

  private siftDown(start: number, pos: number): void {
    const h = this.heap;
    const item = h[pos] as QueueItem;
    while (pos > start) {
      const parentPos = (pos - 1) >> 1;
      const parent = h[parentPos] as QueueItem;
      if (less(item, parent)) {
        h[pos] = parent;
        pos = parentPos;
        continue;
      }
      break;
    }
    h[pos] = item;
  }

  private siftUp(pos: number): void {
    const h = this.heap;
    const end = h.length;
    const start = pos;
    const item = h[pos] as QueueItem;
    let child = 2 * pos + 1;
    while (child < end) {
      const right = child + 1;
      if (right < end && !less(h[child] as QueueItem, h[right] as QueueItem)) child = right;
      h[pos] = h[child] as QueueItem;
      pos = child;
      child = 2 * pos + 1;
    }
    h[pos] = item;
    this.siftDown(start, pos);
  }
}
