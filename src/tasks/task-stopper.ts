/**
 * Ending tasks early: a user's cancel (a pending task at once; a processing one here, or on the
 * replica that runs it) and a failure. Its prompts still in flight then leave ComfyUI; finished
 * images are kept.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { findTask } from '../db/tasks.js';
import type { TaskRow } from '../db/types.js';
import type { ActiveTask } from './active-task.js';
import type { EngineContext } from './engine-context.js';
import { isFinal } from './progress-frame.js';
import type { Signals } from './signals.js';

/** What the stopper needs; the engine passes it in. */
export interface TaskStopperDeps extends EngineContext {
  signals: Signals;
  /** Retries a state change while storage is unavailable (see storage-retry.ts). */
  durably: <T>(what: string, change: () => Promise<T>) => Promise<T>;
  /** The task ended: forget it. */
  forget: (task: ActiveTask) => void;
  /** The queue changed: publish the new positions. */
  announceQueue: () => Promise<void>;
  /** Longest wait of `cancel()` for a task another replica runs to end, in ms. */
  remoteCancelWaitMs: number;
}

export class TaskStopper {
  constructor(private readonly deps: TaskStopperDeps) {}

  /** Cancels a task wherever it is; returns it as it ends up, or undefined when there is no such task. */
  async cancel(taskId: string): Promise<TaskRow | undefined> {
    const { db, transitions, publisher, events } = this.deps;
    const row = await findTask(db, taskId);
    if (!row) return undefined;
    if (row.status === 'pending') {
      const frame = await publisher.run(taskId, () => transitions.cancelPendingTask(db, taskId));
      if (frame) {
        events.emit('task.finished', { taskId, status: 'cancelled', error: null, was: 'pending' });
        await this.deps.announceQueue();
        return findTask(db, taskId);
      }
    }
    // Processing (perhaps claimed just now): here, or on the replica that runs it.
    const now = row.status === 'pending' ? await findTask(db, taskId) : row;
    if (now?.status === 'processing' && !(await this.cancelHere(taskId))) await this.cancelElsewhere(taskId);
    return findTask(db, taskId);
  }

  /** Cancels a task this replica runs; false when it runs elsewhere. */
  async cancelHere(taskId: string): Promise<boolean> {
    const task = this.deps.active.get(taskId);
    if (!task) return false;
    if (!task.stopping) await this.end(task, 'cancel', null);
    return true;
  }

  /**
   * Ends a processing task of this replica: cancelled, or failed (`failed`: the image that caused it).
   * The state change waits out a full disk or a locked database; then the prompts still in flight
   * leave ComfyUI.
   */
  async end(task: ActiveTask, why: 'cancel' | 'fail', error: string | null, failed?: { index: number; worker: string | null }): Promise<void> {
    if (task.stopping) return;
    task.stopping = why;
    const { db, transitions, publisher, events, pool, log } = this.deps;
    const id = task.row.id;
    const status = why === 'cancel' ? 'cancelled' : 'failed';
    const ended = await this.deps.durably(`ending task ${id}`, () =>
      publisher.run(id, () => transitions.endTask(db, { taskId: id, status, error, progress: task.progress, holder: this.deps.instance, ...(failed ? { failedImage: failed.index } : {}) }),
      ),
    );
    this.deps.forget(task);
    if (!ended) return; // it had ended already
    if (failed && error) events.emit('image.failed', { taskId: id, index: failed.index, worker: failed.worker, error });
    await Promise.all(
      ended.inFlight.map(async (image) => {
        const member = image.worker ? pool.get(image.worker) : undefined;
        await member?.worker
          .cancel(image.prompt_id)
          .catch((e: unknown) => log.warn('could not cancel a prompt on ComfyUI', { task: id, worker: image.worker, error: String(e) }));
      }),
    );
    events.emit('task.finished', { taskId: id, status, error, was: 'processing' });
  }

  /** Asks the replica running a task to cancel it, and waits (bounded) until it has ended. */
  private async cancelElsewhere(taskId: string): Promise<void> {
    const { db, transitions, signals, log, remoteCancelWaitMs } = this.deps;
    if (!(await transitions.requestCancel(db, taskId))) return; // it ended meanwhile
    signals.publish({ type: 'cancel', taskId });
    const deadline = Date.now() + remoteCancelWaitMs;
    while (Date.now() < deadline) {
      const row = await findTask(db, taskId);
      if (!row || isFinal(row.status)) return;
      await sleep(100);
    }
    log.warn('a cancelled task has not ended yet on the replica running it', { task: taskId, waited_ms: remoteCancelWaitMs });
  }
}
