/**
 * The scheduling loop: claims pending tasks in the queue policy's order (never more than
 * `maxConcurrentTasks` processing), announces queue positions in that order, hands waiting images to free worker slots in queue order, renews this
 * instance's claims, and fails tasks that no worker could take for longer than an image may run.
 */
import { waitingImages } from '../db/images.js';
import { cancelRequestedIds, findTask, pendingTaskIds, renewLeases } from '../db/tasks.js';
import type { TaskRow } from '../db/types.js';
import type { ActiveTask } from './active-task.js';
import type { EndTask, ImageRunner } from './image-run.js';
import type { EngineContext } from './engine-context.js';
import type { QueuePolicy } from './fair-order.js';
import { WORKER_FULL } from './transitions/submit-image.js';

/** What the scheduler needs; the engine passes it in. */
export interface SchedulerDeps extends EngineContext {
  runner: ImageRunner;
  /** Makes a claimed task active (in memory). */
  activate: (row: TaskRow) => ActiveTask;
  endTask: EndTask;
  /** How long a claim holds without renewal, in ms. */
  leaseMs: number;
  /** Tasks processing at once (MAX_CONCURRENT_TASKS); 0 claims none (`kontext repair`). */
  maxConcurrentTasks: number;
  /** Which pending task is claimed next, and the order queue positions are announced in (QUEUE_POLICY). */
  queuePolicy: QueuePolicy;
  /** Limit of an image's run, in ms: also how long tasks may wait with no worker at all. */
  imageTimeoutMs: number;
  /** Submissions of one image before its task fails. */
  maxAttempts: number;
}


/** Queue positions are announced to the first this many waiting tasks. */
const ANNOUNCED_POSITIONS = 500;

export class Scheduler {
  /** Queue positions last announced, to publish only changes. */
  private readonly announced = new Map<string, number>();
  private noWorkerSince: number | undefined;
  /** The announcement running, and the one that runs after it for everyone who asked meanwhile. */
  private announcing: Promise<void> | undefined;
  private nextAnnouncement: Promise<void> | undefined;

  constructor(private readonly deps: SchedulerDeps) {}

  /** One scheduling pass: claims, then dispatches waiting images to free slots. */
  async tick(stopped: () => boolean): Promise<void> {
    const { db, transitions, publisher, events, pool, instance } = this.deps;
    let claimed = false;
    for (;;) {
      const leaseUntil = new Date(Date.now() + this.deps.leaseMs).toISOString();
      const result = await transitions.claimTask(db, { instance, leaseUntil, maxProcessing: this.deps.maxConcurrentTasks, policy: this.deps.queuePolicy });
      if (!result) break;
      claimed = true;
      this.announced.delete(result.row.id);
      this.deps.activate(result.row);
      // The claim is committed: its frame is published in order with the task's later ones.
      await publisher.run(result.row.id, async () => result.frame);
      events.emit('task.started', { taskId: result.row.id, count: result.row.count });
    }
    if (claimed) await this.announceQueue();
    if (stopped()) return;
    await this.cancelRequested();
    await this.failStarved();
    const free = pool.freeSlots();
    if (free === 0) return;
    // Servers whose slots other replicas filled: this replica's own count does not see their prompts.
    const full = new Set<string>();
    for (const image of await waitingImages(db, instance, free)) {
      const task = this.deps.active.get(image.task_id);
      if (!task || task.stopping) continue;
      let member = pool.acquire(full);
      let assigned = member && (await transitions.submitImage(db, image.task_id, image.idx, member.url, pool.slots));
      while (member && assigned === WORKER_FULL) {
        pool.release(member);
        full.add(member.url);
        member = pool.acquire(full);
        assigned = member && (await transitions.submitImage(db, image.task_id, image.idx, member.url, pool.slots));
      }
      if (!member || assigned === WORKER_FULL) break;
      if (!assigned) {
        pool.release(member);
        continue;
      }
      if (assigned.attempts > this.deps.maxAttempts) {
        pool.release(member);
        await this.deps.endTask(task, 'fail', `image ${image.idx} could not be completed after ${this.deps.maxAttempts} attempts`, { index: image.idx, worker: null });
        continue;
      }
      task.lastActivity = Date.now();
      // Submitted in queue order per server: the image runner posts a prompt after the one handed to
      // the same server before it is queued there; prompts to different servers go out together.
      await this.deps.runner.start(task, assigned, member, 'run');
    }
  }

  /**
   * Publishes the queue positions of pending tasks that changed since last time. Calls while one
   * runs share the next one (a burst of enqueues or claims reads the queue and rewrites the
   * positions twice, not once per call); each caller's change is seen by the one it waits for.
   */
  announceQueue(): Promise<void> {
    if (this.nextAnnouncement) return this.nextAnnouncement;
    const next = (this.announcing ?? Promise.resolve()).then(() => {
      this.nextAnnouncement = undefined;
      return this.announceNow();
    });
    this.nextAnnouncement = next;
    const settled = next.catch(() => undefined);
    this.announcing = settled;
    void settled.then(() => {
      if (this.announcing === settled) this.announcing = undefined;
    });
    return next;
  }

  private async announceNow(): Promise<void> {
    const { db, transitions, publisher } = this.deps;
    const ids = await pendingTaskIds(db, this.deps.queuePolicy, { fresh: true });
    const waiting = new Set(ids);
    for (const [id] of this.announced) if (!waiting.has(id)) this.announced.delete(id);
    const changed: [string, number][] = [];
    for (const [i, id] of ids.slice(0, ANNOUNCED_POSITIONS).entries()) {
      if (this.announced.get(id) === i + 1) continue;
      this.announced.set(id, i + 1);
      changed.push([id, i + 1]);
    }
    if (changed.length === 0) return;
    // One transaction for all; each frame is then published in its task's chain. A transition of
    // that task written meanwhile has a higher seq, and watchers drop the older frame behind it.
    const frames = await transitions.announcePositions(db, changed);
    // Published together; the watchers get them over several turns of the event loop (task-watch-hub.ts).
    await Promise.all(frames.map((frame) => publisher.run(frame.taskId, async () => frame)));
  }

  /**
   * Extends this instance's claims; a failure is logged (the next renewal tries again). A task whose
   * claim another replica took over meanwhile (this one was too slow to renew) is let go: its runs
   * stop following their prompts, untouched on ComfyUI, since the new holder follows them now.
   */
  async renewLeases(): Promise<void> {
    const { db, instance, active, log } = this.deps;
    const before = [...active.values()];
    let held: Set<string>;
    try {
      held = new Set(await renewLeases(db, { instance, leaseUntil: new Date(Date.now() + this.deps.leaseMs).toISOString() }));
    } catch (err) {
      log.error('could not renew task claims', { error: String(err) });
      return;
    }
    for (const task of before) {
      if (held.has(task.row.id) || task.stopping || active.get(task.row.id) !== task) continue;
      const row = await findTask(db, task.row.id);
      if (row?.status !== 'processing') continue; // it ended here meanwhile
      log.warn('another replica took over this task (its claim had lapsed); letting it go', { task: task.row.id, holder: row.claimed_by });
      task.stopping = 'lost';
      active.delete(task.row.id);
      for (const [index, image] of task.running) image.member.worker.release(image.promptId, `task ${task.row.id} (image ${index}) is now followed by ${row.claimed_by ?? 'another replica'}`);
    }
  }

  /** Ends the tasks of this instance whose cancel another replica recorded. */
  private async cancelRequested(): Promise<void> {
    for (const id of await cancelRequestedIds(this.deps.db, this.deps.instance)) {
      const task = this.deps.active.get(id);
      if (task && !task.stopping) await this.deps.endTask(task, 'cancel', null);
    }
  }

  /**
   * With no worker reachable for longer than an image may take, fails the processing tasks that
   * have nothing running (busy workers are no reason: those tasks are merely waiting their turn).
   */
  private async failStarved(): Promise<void> {
    const { pool, imageTimeoutMs } = this.deps;
    if (pool.members.some((m) => m.healthy)) {
      this.noWorkerSince = undefined;
      return;
    }
    this.noWorkerSince ??= Date.now();
    if (Date.now() - this.noWorkerSince < imageTimeoutMs) return;
    for (const task of [...this.deps.active.values()]) {
      if (task.stopping || task.running.size > 0 || Date.now() - task.lastActivity < imageTimeoutMs) continue;
      const workers = pool.members.map((m) => `${m.url} (${m.healthy ? 'busy' : (m.lastError ?? 'down')})`).join(', ');
      await this.deps.endTask(task, 'fail', `no ComfyUI worker was reachable for ${Math.round(imageTimeoutMs / 1000)} s: ${workers}`);
    }
  }
}
