/**
 * Nothing lost, nothing run twice, after a crash or an outage:
 * - at start, every processing task this instance must look after is taken over (its stored frame
 *   published again first, in case its last holder died before publishing it) and each of its
 *   images reconciled with its server: finished prompts are adopted, queued or running ones
 *   re-attached, vanished ones resubmitted under the same prompt id, and a task whose images all
 *   ended is finished from them;
 * - a server that was down (hung, cut off) loses, before it gets work again, the prompts that moved
 *   to other servers while it was away or whose task ended, so it does not run them too.
 */
import { imagesByPromptId, imagesOfTask } from '../db/images.js';
import type { ImageRow, TaskRow } from '../db/types.js';
import type { ActiveTask } from './active-task.js';
import type { ImageRunner } from './image-run.js';
import type { EngineContext } from './engine-context.js';
import { storedFrame } from './stored-frame.js';
import type { PoolMember } from './worker-pool.js';

/** What recovery needs; the engine passes it in. */
export interface RecoveryDeps extends EngineContext {
  runner: ImageRunner;
  activate: (row: TaskRow) => ActiveTask;
  /** The task ended while it was away: forget it. */
  taskSettled: (task: ActiveTask) => void;
  leaseMs: number;
  dataDir: string;
  /** True once start-up recovery has run (a returning server may then hand images back). */
  started: () => boolean;
}

export class Recovery {
  constructor(private readonly deps: RecoveryDeps) {}

  /** Takes over what a previous run of this instance left processing (and lapsed claims) and follows each image where it is. */
  recoverAtStart(): Promise<number> {
    return this.adopt(true);
  }

  /**
   * Takes over tasks whose replica died (its claim lapsed, TASK_LEASE_S) or that nobody holds, with
   * the same reconciliation as a restart; returns how many.
   */
  adoptLapsed(): Promise<number> {
    return this.adopt(false);
  }

  private async adopt(includeOwn: boolean): Promise<number> {
    const { db, transitions, publisher, events, pool, log } = this.deps;
    const leaseUntil = new Date(Date.now() + this.deps.leaseMs).toISOString();
    const rows = await transitions.recoverTasks(db, { instance: this.deps.instance, leaseUntil, includeOwn });
    for (const row of rows) {
      const task = this.deps.activate(row);
      // The last holder may have died between committing a frame and publishing it: its watchers get
      // that frame now, before this replica's next one (a frame they already have is dropped by seq).
      void publisher
        .run(row.id, async () => storedFrame(row))
        .catch((err: unknown) => log.warn('could not publish the stored frame of a task taken over', { task: row.id, error: String(err) }));
      const settled = await publisher.run(row.id, () => transitions.settleTask(db, row.id, this.deps.dataDir));
      if (settled) {
        // A crash between an image's last write and the task's: finished from its images.
        this.deps.taskSettled(task);
        events.emit('task.finished', { taskId: row.id, status: settled.status === 'completed' ? 'completed' : 'failed', error: settled.error, was: 'processing' });
        continue;
      }
      const all = await imagesOfTask(db, row.id);
      const images = all.filter((i) => i.status === 'submitted' || i.status === 'running');
      task.done = all.filter((i) => i.status === 'completed').length;
      events.emit('task.recovered', { taskId: row.id, inFlight: images.length });
      for (const image of images) {
        const member = image.worker ? pool.occupy(image.worker) : undefined;
        if (!member) {
          // Its server is no longer configured: it runs again elsewhere, under the same prompt id.
          await transitions.requeueImage(db, row.id, image.idx, `its server ${image.worker ?? '(none)'} is no longer in COMFYUI_URL`);
          continue;
        }
        void this.deps.runner.start(task, image, member, 'attach');
      }
    }
    return rows.length;
  }

  /**
   * Before a server that was down gets work again: each of our prompts in its queue is kept if its
   * image is still assigned to this server, taken back if its image waits for a worker, and
   * otherwise deleted from the queue (interrupted when running). Prompts of other clients are
   * never touched. Throws when the server cannot be asked: it then stays out of rotation.
   */
  async reconcileReturningWorker(member: PoolMember): Promise<void> {
    const server = member.worker;
    const queue = await server.queue();
    const running = new Set(queue.queue_running.map((item) => item[1]));
    const queued = [...queue.queue_running, ...queue.queue_pending].map((item) => item[1]);
    const stale: string[] = [];
    for (const image of await imagesByPromptId(this.deps.db, queued)) {
      const open = image.status === 'submitted' || image.status === 'running';
      if (open && image.worker === member.url) continue; // it runs here by our records: recovery or its run follows it
      if (image.status === 'pending' && (await this.takeBack(image, member))) continue;
      stale.push(image.prompt_id);
    }
    if (stale.length === 0) return;
    const waiting = stale.filter((id) => !running.has(id));
    if (waiting.length > 0) await server.deleteQueued(waiting);
    for (const id of stale.filter((p) => running.has(p))) await server.interrupt(id);
    this.deps.log.warn('removed prompts that ran elsewhere or whose task ended from a returning ComfyUI server', {
      worker: member.url,
      deleted: waiting.length,
      interrupted: stale.length - waiting.length,
    });
  }

  /** An image waiting for a worker whose prompt is still in `member`'s queue: follow it there instead of running it again. */
  private async takeBack(image: ImageRow, member: PoolMember): Promise<boolean> {
    const task = this.deps.active.get(image.task_id);
    if (!task || task.stopping || !this.deps.started()) return false;
    const assigned = await this.deps.transitions.submitImage(this.deps.db, image.task_id, image.idx, member.url);
    if (!assigned) return false; // another server took it meanwhile
    const slot = this.deps.pool.occupy(member.url);
    if (!slot) return false;
    this.deps.log.info('image taken back by its returning server', { task: image.task_id, index: image.idx, worker: member.url });
    void this.deps.runner.start(task, assigned, slot, 'attach');
    return true;
  }
}
