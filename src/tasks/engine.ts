/**
 * The task engine: takes pending tasks from the durable queue (never more than
 * `maxConcurrentTasks` at once), spreads their images over the worker pool, follows each image's
 * prompt to its result, and reports progress as persisted-then-published frames and typed events.
 *
 * It coordinates parts that each do one job and get what they call passed in:
 * - `Scheduler` (scheduler.ts): claims, leases, the tick, queue positions, dispatching images;
 * - `ImageRunner` (image-run.ts): one image's run, from submission to outcome, with the retry decision;
 * - `ResultStore` (result-store.ts) and `ReferenceCache` (reference-cache.ts): files to and from ComfyUI;
 * - `Recovery` (recovery.ts): crash recovery at start, lapsed claims of dead replicas, servers that come back;
 * - `TaskStopper` (task-stopper.ts): cancels (here or on the replica running the task) and failures;
 * - `FramePublisher` (frame-publisher.ts): a task's transitions in order, their frames published;
 * - `transitions/`: every change of a task's or image's status, one transaction each;
 * - `progress.ts`: progress, ETA and throttling, pure functions of `ActiveTask` (active-task.ts).
 *
 * The database is the source of truth; memory holds only what can be rebuilt.
 */
import { join } from 'node:path';
import type { KeyLimits } from '../auth/caller.js';
import type { Workflow } from '../comfyui/workflow.js';
import type { Db } from '../db/database.js';
import type { NewImage, NewTask, TaskRow } from '../db/types.js';
import { silentLogger, type Logger } from '../log.js';
import type { BlobStore } from '../storage/blob-store.js';
import { FileStore } from '../storage/file-store.js';
import { activeTask, type ActiveTask } from './active-task.js';
import { deleteOldTasks } from './cleanup.js';
import { logEngineEvents } from './event-log.js';
import { EngineEventBus } from './events.js';
import type { QueuePolicy } from './fair-order.js';
import { createMemorySignals, type SignalSubscription, type Signals } from './signals.js';
import { FramePublisher } from './frame-publisher.js';
import { ImageRunner } from './image-run.js';
import type { ProgressBus } from './progress-bus.js';
import { Recovery } from './recovery.js';
import { ReferenceCache } from './reference-cache.js';
import type { OutputFormat } from '../images/output-formats.js';
import { ResultStore } from './result-store.js';
import { Scheduler } from './scheduler.js';
import { TaskStopper } from './task-stopper.js';
import { retryWhileStorageUnavailable } from './storage-retry.js';
import { transitions as defaultTransitions, type Transitions } from './transitions/index.js';
import type { PoolMember, WorkerPool } from './worker-pool.js';

/** Options of the engine. */
export interface EngineOptions {
  db: Db;
  pool: WorkerPool;
  bus: ProgressBus;
  workflow: Workflow;
  /** Absolute DATA_DIR. */
  dataDir: string;
  /** Where images go (`images/<task>/<index>.<ext>`) and uploads are read from. @default a folder store over `dataDir` */
  store?: BlobStore;
  /** This replica's local temp folder, for downloads in progress. @default `dataDir`/tmp */
  tmpDir?: string;
  /** Tasks processing at once; 0 claims none (`kontext repair`). @default 3 */
  maxConcurrentTasks?: number;
  /** Limit of one image's own run on ComfyUI, from its start, in ms (COMFYUI_TIMEOUT). @default 300_000 */
  imageTimeoutMs?: number;
  /** This service instance, for claims. @default 'local' */
  instance?: string;
  /** How long a claim holds without renewal. @default 60_000 */
  leaseMs?: number;
  /** Submissions of one image before its task fails (vanished prompts, dead workers). @default 4 */
  maxAttempts?: number;
  /** Least time between two previews published for one task. @default 250 */
  previewIntervalMs?: number;
  /** Finished tasks older than this many days are deleted; 0 keeps them. @default 7 */
  cleanupDays?: number;
  /** Time between cleanups. @default 3_600_000 */
  cleanupIntervalMs?: number;
  /** Time between scheduling passes when nothing wakes the engine. @default 1000 */
  tickMs?: number;
  /** Keep ComfyUI's workflow and prompt in stored PNGs (KEEP_IMAGE_METADATA). @default false */
  keepImageMetadata?: boolean;
  /** The format images are stored in (OUTPUT_FORMAT). @default 'png' */
  outputFormat?: OutputFormat;
  /** Longest pause between two tries of a state change while the disk or database is unavailable, in ms. @default 5000 */
  storageRetryMaxMs?: number;
  /** Hints between replicas (cancel, wake). @default in-process signals */
  signals?: Signals;
  /** Longest wait of `cancel()` for a task another replica runs to end, in ms. @default 10_000 */
  remoteCancelWaitMs?: number;
  /** Which pending task starts next: `fair` (round-robin across API keys, by priority) or `fifo` (QUEUE_POLICY). @default 'fair' */
  queuePolicy?: QueuePolicy;
  /** Pending tasks of all keys together beyond which enqueue refuses (MAX_QUEUED_TASKS). @default 1000 */
  maxQueuedTasks?: number;
  /** The state changes (tests wrap them to inject failures). @default the transitions of transitions/ */
  transitions?: Transitions;
  log?: Logger;
}

/** Least time between two frames that only report a new executing node. */
const NODE_FRAME_INTERVAL_MS = 250;

export class TaskEngine {
  /** Typed events: task.queued, task.started, image.ready, task.finished, worker.up, ... */
  readonly events = new EngineEventBus();
  /** The order pending tasks start in (queue positions follow it too). */
  readonly queuePolicy: QueuePolicy;
  /** The ceiling on pending tasks that enqueue enforces. */
  readonly maxQueuedTasks: number;

  private readonly db: Db;
  private readonly pool: WorkerPool;
  private readonly transitions: Transitions;
  private readonly publisher: FramePublisher;
  private readonly references: ReferenceCache;
  private readonly runner: ImageRunner;
  private readonly scheduler: Scheduler;
  private readonly recovery: Recovery;
  private readonly dataDir: string;
  private readonly store: BlobStore;
  private readonly tickMs: number;
  private readonly leaseMs: number;
  private readonly cleanupDays: number;
  private readonly cleanupIntervalMs: number;
  private readonly log: Logger;
  /** Retries a state change while the disk or the database is unavailable, until it goes through or the engine stops. */
  private readonly durably: <T>(what: string, change: () => Promise<T>) => Promise<T>;

  private readonly signals: Signals;
  private readonly stopper: TaskStopper;
  private signalSubscription: SignalSubscription | undefined;

  private readonly active = new Map<string, ActiveTask>();
  private timers: NodeJS.Timeout[] = [];
  private ticking = false;
  private keepingClaims = false;
  private tickAgain = false;
  /** Recovery has run: before that, scheduling would claim tasks that recovery then takes for a previous run's. */
  private started = false;
  private stopped = false;

  constructor(options: EngineOptions) {
    this.db = options.db;
    this.pool = options.pool;
    this.transitions = options.transitions ?? defaultTransitions;
    this.signals = options.signals ?? createMemorySignals();
    this.dataDir = options.dataDir;
    this.store = options.store ?? new FileStore(this.dataDir);
    this.tickMs = options.tickMs ?? 1000;
    this.queuePolicy = options.queuePolicy ?? 'fair';
    this.maxQueuedTasks = options.maxQueuedTasks ?? 1000;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.cleanupDays = options.cleanupDays ?? 7;
    this.cleanupIntervalMs = options.cleanupIntervalMs ?? 3_600_000;
    this.log = options.log ?? silentLogger;
    const imageTimeoutMs = options.imageTimeoutMs ?? 300_000;
    const maxAttempts = options.maxAttempts ?? 4;
    const instance = options.instance ?? 'local';
    const storageRetryMaxMs = options.storageRetryMaxMs ?? 5000;
    this.durably = (what, change) => retryWhileStorageUnavailable(what, change, { maxWaitMs: storageRetryMaxMs, stopped: () => this.stopped, log: this.log });
    logEngineEvents(this.events, this.log);

    this.publisher = new FramePublisher(options.bus);
    this.references = new ReferenceCache(this.db, this.store);
    const shared = { db: this.db, transitions: this.transitions, publisher: this.publisher, events: this.events, pool: this.pool, log: this.log, active: this.active, instance };
    this.stopper = new TaskStopper({
      ...shared,
      signals: this.signals,
      durably: this.durably,
      forget: (task) => this.forget(task),
      announceQueue: () => this.scheduler.announceQueue(),
      remoteCancelWaitMs: options.remoteCancelWaitMs ?? 10_000,
    });
    const endTask = this.stopper.end.bind(this.stopper);
    this.runner = new ImageRunner({
      ...shared,
      workflow: options.workflow,
      references: this.references,
      results: new ResultStore(this.store, options.tmpDir ?? join(this.dataDir, 'tmp'), options.keepImageMetadata ?? false, options.outputFormat ?? 'png'),
      dataDir: this.dataDir,
      imageTimeoutMs,
      maxAttempts,
      previewIntervalMs: options.previewIntervalMs ?? 250,
      nodeFrameIntervalMs: NODE_FRAME_INTERVAL_MS,
      durably: this.durably,
      stopping: () => this.stopped,
      endTask,
      taskCompleted: (task) => this.forget(task),
      // A slot freed: this replica schedules now, the others at the signal.
      wake: () => {
        this.wake();
        this.signals.publish({ type: 'wake' });
      },
    });
    const activate = (row: TaskRow) => this.activate(row);
    this.scheduler = new Scheduler({
      ...shared,
      runner: this.runner,
      activate,
      endTask,
      leaseMs: this.leaseMs,
      maxConcurrentTasks: options.maxConcurrentTasks ?? 3,
      queuePolicy: this.queuePolicy,
      imageTimeoutMs,
      maxAttempts,
    });
    this.recovery = new Recovery({
      ...shared,
      runner: this.runner,
      activate,
      taskSettled: (task) => this.forget(task),
      leaseMs: this.leaseMs,
      dataDir: this.dataDir,
      started: () => this.started,
    });
    this.pool.on('up', (member) => {
      this.events.emit('worker.up', { url: member.url, device: member.device });
      this.wake();
    });
    this.pool.on('down', (member) => {
      this.events.emit('worker.down', { url: member.url, error: member.lastError });
      this.moveOffDeadWorker(member);
    });
  }

  /** Recovers what a previous run left processing, then starts scheduling. */
  async start(): Promise<void> {
    await this.recovery.recoverAtStart();
    this.started = true;
    this.signalSubscription = this.signals.subscribe((signal) => {
      // A cancel for a task this replica runs; a wake; or signals may have been lost: a pass checks it all.
      if (signal.type === 'cancel') void this.stopper.cancelHere(signal.taskId);
      else this.wake();
    });
    await this.signalSubscription.ready;
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.tickMs, () => this.wake());
    every(Math.max(1000, Math.floor(this.leaseMs / 3)), () => void this.keepClaims());
    if (this.cleanupDays > 0) {
      const clean = () => void this.cleanup().catch((err: unknown) => this.log.error('cleanup failed', { error: String(err) }));
      every(this.cleanupIntervalMs, clean);
      clean();
    }
    this.wake();
  }

  /**
   * Stops scheduling. Prompts in flight keep running on ComfyUI; their tasks stay `processing` and
   * the next start adopts their results. Call before stopping the pool.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.signalSubscription?.close();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.publisher.idle();
  }

  /** Waits until every image run started so far has settled (tests, shutdown). */
  idle(): Promise<void> {
    return this.runner.idle();
  }

  /** Asks for a scheduling pass soon (a task was added, a slot freed); nothing before start() has recovered. */
  wake(): void {
    if (this.stopped || !this.started) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = true;
    void this.scheduler
      .tick(() => this.stopped)
      .catch((err: unknown) => this.log.error('scheduling failed', { error: String(err) }))
      .finally(() => {
        this.ticking = false;
        if (this.tickAgain) {
          this.tickAgain = false;
          this.wake();
        }
      });
  }

  /** Asks every replica (this one included) for a scheduling pass: a task was queued. */
  wakeAll(): void {
    this.wake();
    this.signals.publish({ type: 'wake' });
  }

  /**
   * Queues a new task with its images (one transaction, with its first frame) and announces the
   * queue, within the limits of its owner (`limits`, @default none) and the ceiling on queued tasks:
   * QuotaExceededError otherwise, with nothing stored. Throws what the database throws (a unique
   * idempotency key already used, say). Call `wakeAll()` afterwards to schedule it.
   */
  async enqueue(task: NewTask & { status: 'pending' }, images: NewImage[], limits: KeyLimits = {}): Promise<void> {
    const quota = { limits, maxQueuedTasks: this.maxQueuedTasks };
    await this.publisher.run(task.id, () => this.transitions.enqueueTask(this.db, task, images, quota));
    this.events.emit('task.queued', { taskId: task.id, count: images.length });
    await this.scheduler.announceQueue();
  }

  /** Publishes the queue positions that changed. */
  announceQueue(): Promise<void> {
    return this.scheduler.announceQueue();
  }

  /**
   * Cancels a task: a pending one at once; a processing one has its waiting prompts deleted from
   * ComfyUI's queues and its running prompts interrupted, here or by the replica that runs it.
   * Finished images are kept. Returns the task as it ends up, or undefined when there is no such task.
   */
  cancel(taskId: string): Promise<TaskRow | undefined> {
    return this.stopper.cancel(taskId);
  }

  /** Makes a server that was down safe to use again, before it gets new work (see Recovery). */
  reconcileReturningWorker(member: PoolMember): Promise<void> {
    return this.recovery.reconcileReturningWorker(member);
  }

  /** Deletes finished tasks older than `days` (default `cleanupDays`) with their files; returns how many. */
  cleanup(days = this.cleanupDays): Promise<number> {
    return deleteOldTasks({ db: this.db, store: this.store, days, log: this.log });
  }

  /** Ids of the processing tasks this engine is looking after. */
  activeTaskIds(): string[] {
    return [...this.active.keys()];
  }

  /** Renews this instance's claims, then takes over the tasks of replicas whose claims lapsed. */
  private async keepClaims(): Promise<void> {
    if (this.keepingClaims) return;
    this.keepingClaims = true;
    try {
      await this.scheduler.renewLeases();
      const adopted = await this.recovery.adoptLapsed();
      if (adopted > 0) this.wake();
    } catch (err) {
      this.log.error('could not take over lapsed tasks', { error: String(err) });
    } finally {
      this.keepingClaims = false;
    }
  }

  private activate(row: TaskRow): ActiveTask {
    let task = this.active.get(row.id);
    if (!task) this.active.set(row.id, (task = activeTask(row)));
    return task;
  }

  private forget(task: ActiveTask): void {
    if (this.active.get(task.row.id) === task) this.active.delete(task.row.id);
  }

  /** A server went down: its images go back to the queue, to run on the others (same prompt_id). */
  private moveOffDeadWorker(member: PoolMember): void {
    this.references.forget(member.url);
    for (const task of this.active.values()) {
      for (const [index, image] of task.running) {
        if (image.member === member) member.worker.release(image.promptId, `ComfyUI at ${member.url} is down; moving image ${index} to another worker`);
      }
    }
  }
}
