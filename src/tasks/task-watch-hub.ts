/**
 * One bus subscription per watched task, whatever the number of its watchers in this process. Each
 * frame is handed, synchronously and as the same object, to every watcher of its task, so the
 * transports can fan it out in one loop (as a bare broadcast does) instead of through one async
 * generator and one bus subscription per subscriber. A re-sync notice (a broker reconnect) is
 * answered by re-reading the task once for all its watchers.
 *
 * Watchers are of a kind (a transport names its own: graphql-ws, SSE; iterated watches are one
 * more), and each frame goes to the kinds with fewer watchers first. Writing a frame to 1200 sockets takes ~15 ms, nearly
 * all of it the kernel's socket writes, and whoever comes last waits for all of it: in the fan-out
 * bench, 200 SSE streams after 1000 graphql-ws sockets got frames at p99 2.1x a bare broadcast's.
 * The smaller kind first costs the larger one the smaller one's share of the loop (here 200/1200)
 * and spares the smaller one the larger one's (1000/1200): SSE 0.4x, graphql-ws 1.28x -> 1.32x.
 *
 * Frames of many tasks can arrive together: the queue positions of 99 tasks when one ends, a Redis
 * read holding many messages, a replica taking over many tasks. Handed out in one go, 99 tasks'
 * frames to 100 watchers each held the loop ~0.5 s (the many-tasks fan-out bench), and the running
 * task's frames and every request waited. So a hub hands frames to at most `watchersPerTurn`
 * watchers per turn of the event loop; the next task's frame waits for a later turn. One frame
 * always reaches all its watchers at once, and a task's frames keep their order.
 */
import { isResync, type FrameSubscription, type ProgressBus } from './progress-bus.js';
import type { ProgressFrame } from './progress-frame.js';

/** What the hub calls with every frame of a task it watches. */
export interface FrameWatcher {
  frame(frame: ProgressFrame): void;
}

/** The kind of watchers that have not named one. */
export const DEFAULT_KIND = '';

/** Watchers handed frames per turn of the event loop before another task's frame waits (~5 ms of socket writes). @default 256 */
export const WATCHERS_PER_TURN = 256;

/** A task's one bus subscription and its watchers, by kind. */
interface Watched {
  subscription: FrameSubscription;
  kinds: Map<string, Set<FrameWatcher>>;
  /** Watchers over all kinds. */
  size: number;
}

/** Fans each task's frames out to the watchers of that task in this process. */
export class TaskWatchHub {
  readonly #tasks = new Map<string, Watched>();
  /** Watchers handed a frame in this turn of the event loop. */
  #spent = 0;
  /** Pumps waiting for the next turn, in arrival order. */
  #waiting: (() => void)[] = [];

  /**
   * @param bus where frames come from
   * @param reread the task's stored state as a frame (after a re-sync notice); undefined when gone
   * @param watchersPerTurn see WATCHERS_PER_TURN @default WATCHERS_PER_TURN
   */
  constructor(
    private readonly bus: ProgressBus,
    private readonly reread: (taskId: string) => Promise<ProgressFrame | undefined>,
    private readonly watchersPerTurn: number = WATCHERS_PER_TURN,
  ) {}

  /**
   * Adds `watcher` to `taskId`'s frames; resolves once every frame published from now on reaches it
   * (the bus's `ready`). Call `remove` to stop; a failed `ready` rejects with the watcher removed.
   */
  async add(taskId: string, watcher: FrameWatcher): Promise<void> {
    let watched = this.#tasks.get(taskId);
    if (!watched) {
      watched = { subscription: this.bus.subscribe(taskId), kinds: new Map([[DEFAULT_KIND, new Set()]]), size: 0 };
      this.#tasks.set(taskId, watched);
      void this.#pump(taskId, watched);
    }
    watched.kinds.get(DEFAULT_KIND)!.add(watcher);
    watched.size++;
    try {
      await watched.subscription.ready;
    } catch (err) {
      this.remove(taskId, watcher);
      throw err;
    }
  }

  /**
   * Moves `watcher` (added, of `taskId`) into `kind` (a transport's name for its own), which gets
   * frames before larger kinds and after smaller ones; see the file comment.
   */
  setKind(taskId: string, watcher: FrameWatcher, kind: string): void {
    const watched = this.#tasks.get(taskId);
    if (!watched || !deleteFrom(watched.kinds, watcher)) return;
    let members = watched.kinds.get(kind);
    if (!members) watched.kinds.set(kind, (members = new Set()));
    members.add(watcher);
  }

  /** Stops giving `taskId`'s frames to `watcher`; the last one out closes the task's bus subscription. */
  remove(taskId: string, watcher: FrameWatcher): void {
    const watched = this.#tasks.get(taskId);
    if (!watched || !deleteFrom(watched.kinds, watcher) || --watched.size > 0) return;
    this.#tasks.delete(taskId);
    watched.subscription.close();
  }

  /** Watchers now, over every task (for metrics and tests). */
  get watchers(): number {
    let n = 0;
    for (const watched of this.#tasks.values()) n += watched.size;
    return n;
  }

  /** A new turn: its budget is whole again, and the pumps that waited go on, first come first. */
  readonly #nextTurn = (): void => {
    this.#spent = 0;
    for (const resume of this.#waiting.splice(0)) resume();
  };

  async #pump(taskId: string, watched: Watched): Promise<void> {
    for await (const event of watched.subscription) {
      // Awaited in line: the frames after a notice wait for the stored state, so order is kept.
      const frame = isResync(event) ? await this.reread(taskId).catch(() => undefined) : event;
      if (!frame) continue;
      while (this.#spent >= this.watchersPerTurn) await new Promise<void>((resolve) => this.#waiting.push(resolve));
      if (this.#spent === 0) setImmediate(this.#nextTurn);
      this.#spent += watched.size;
      // Fewer watchers first (a few kinds: sorting them costs nothing against the writes).
      const kinds = [...watched.kinds.values()].sort((a, b) => a.size - b.size);
      // A watcher may remove itself (its final frame) while we iterate: Set iteration allows it.
      for (const members of kinds) {
        for (const watcher of members) {
          try {
            watcher.frame(frame);
          } catch {
            // One watcher's failure (a socket gone wrong) must not cost the others their frame.
          }
        }
      }
    }
  }
}

/** Deletes `watcher` from its kind's set; false when no set held it. Empty sets stay (a task has a few). */
function deleteFrom(kinds: Map<string, Set<FrameWatcher>>, watcher: FrameWatcher): boolean {
  for (const members of kinds.values()) if (members.delete(watcher)) return true;
  return false;
}
