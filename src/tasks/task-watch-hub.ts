/**
 * One bus subscription per watched task, whatever the number of its watchers in this process. Each
 * frame is handed, synchronously and as the same object, to every watcher of its task, so the
 * transports can fan it out in one loop (as a bare broadcast does) instead of through one async
 * generator and one bus subscription per subscriber. A re-sync notice (a broker reconnect) is
 * answered by re-reading the task once for all its watchers.
 */
import { isResync, type FrameSubscription, type ProgressBus } from './progress-bus.js';
import type { ProgressFrame } from './progress-frame.js';

/** What the hub calls with every frame of a task it watches. */
export interface FrameWatcher {
  frame(frame: ProgressFrame): void;
}

/** A task's one bus subscription and its watchers. */
interface Watched {
  subscription: FrameSubscription;
  watchers: Set<FrameWatcher>;
}

/** Fans each task's frames out to the watchers of that task in this process. */
export class TaskWatchHub {
  readonly #tasks = new Map<string, Watched>();

  /**
   * @param bus where frames come from
   * @param reread the task's stored state as a frame (after a re-sync notice); undefined when gone
   */
  constructor(
    private readonly bus: ProgressBus,
    private readonly reread: (taskId: string) => Promise<ProgressFrame | undefined>,
  ) {}

  /**
   * Adds `watcher` to `taskId`'s frames; resolves once every frame published from now on reaches it
   * (the bus's `ready`). Call `remove` to stop; a failed `ready` rejects with the watcher removed.
   */
  async add(taskId: string, watcher: FrameWatcher): Promise<void> {
    let watched = this.#tasks.get(taskId);
    if (!watched) {
      watched = { subscription: this.bus.subscribe(taskId), watchers: new Set() };
      this.#tasks.set(taskId, watched);
      void this.#pump(taskId, watched);
    }
    watched.watchers.add(watcher);
    try {
      await watched.subscription.ready;
    } catch (err) {
      this.remove(taskId, watcher);
      throw err;
    }
  }

  /** Stops giving `taskId`'s frames to `watcher`; the last one out closes the task's bus subscription. */
  remove(taskId: string, watcher: FrameWatcher): void {
    const watched = this.#tasks.get(taskId);
    if (!watched || !watched.watchers.delete(watcher) || watched.watchers.size > 0) return;
    this.#tasks.delete(taskId);
    watched.subscription.close();
  }

  /** Watchers now, over every task (for metrics and tests). */
  get watchers(): number {
    let n = 0;
    for (const watched of this.#tasks.values()) n += watched.watchers.size;
    return n;
  }

  async #pump(taskId: string, watched: Watched): Promise<void> {
    for await (const event of watched.subscription) {
      // Awaited in line: the frames after a notice wait for the stored state, so order is kept.
      const frame = isResync(event) ? await this.reread(taskId).catch(() => undefined) : event;
      if (!frame) continue;
      // A watcher may remove itself (its final frame) while we iterate: Set iteration allows it.
      for (const watcher of watched.watchers) {
        try {
          watcher.frame(frame);
        } catch {
          // One watcher's failure (a socket gone wrong) must not cost the others their frame.
        }
      }
    }
  }
}
