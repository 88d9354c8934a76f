/**
 * The task engine: takes pending tasks from the durable queue (never more than
 * `maxConcurrentTasks` at once), spreads their images over the worker pool, follows each image's
 * prompt to its result, downloads it, and reports progress as persisted-then-published frames.
 *
 * The database is the source of truth; memory holds only what can be rebuilt. After a crash,
 * `start()` reconciles every image of every processing task with its ComfyUI server: finished
 * prompts are adopted, queued or running ones re-attached, vanished ones resubmitted under the
 * same prompt_id, so nothing is run twice and nothing needs repairing by hand.
 */
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import {
  ComfyError,
  ComfyInterruptedError,
  ComfyPromptVanishedError,
  ComfyQueueTimeoutError,
  ComfyRunTimeoutError,
} from '../comfyui/errors.js';
import type { PromptEvent, PromptResult } from '../comfyui/worker.js';
import { bindWorkflow, type Workflow } from '../comfyui/workflow.js';
import type { Db } from '../db/database.js';
import { assignImage, findImage, finishOpenImages, imagesByPromptId, imagesOfTask, inFlightImages, updateImage, waitingImages } from '../db/images.js';
import {
  claimNextPending,
  findRecoverable,
  findTask,
  pendingTaskIds,
  reclaim,
  renewLeases,
  saveFrame,
} from '../db/tasks.js';
import type { ImageRow, TaskRow, TaskStatus, TaskUpdate } from '../db/types.js';
import { findUpload } from '../db/uploads.js';
import { describeWriteError, isStorageUnavailable } from '../db/write-health.js';
import { stripPngMetadata } from '../images/strip-png-metadata.js';
import { silentLogger, type Logger } from '../log.js';
import { deleteOldTasks } from './cleanup.js';
import { parseSize } from './generate-params.js';
import type { ProgressBus } from './progress-bus.js';
import { emptyFrame, type FrameImage, type ProgressFrame } from './progress-frame.js';
import type { PoolMember, WorkerPool } from './worker-pool.js';

/** Options of the engine. */
export interface EngineOptions {
  db: Db;
  pool: WorkerPool;
  bus: ProgressBus;
  workflow: Workflow;
  /** Absolute; images go to `images/<task>/<index>.<ext>` below it. */
  dataDir: string;
  /** Tasks processing at once. @default 3 */
  maxConcurrentTasks?: number;
  /** Longest wait for one image from submission, in ms (COMFYUI_TIMEOUT). @default 300_000 */
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
  /** Longest pause between two tries of a state change while the disk or database is unavailable, in ms. @default 5000 */
  storageRetryMaxMs?: number;
  log?: Logger;
}

/** What the engine keeps in memory about a processing task (rebuilt from the database after a restart). */
interface ActiveTask {
  row: TaskRow;
  /** Per image index: progress within the current prompt. */
  steps: Map<number, { step: number; total: number; node: string | null; lastStepAt: number; member: PoolMember; promptId: string }>;
  /** Images finished so far (kept here so a sampler step costs no database read). */
  done: number;
  progress: number;
  /** Smoothed time per sampler step, ms. */
  stepMs: number | undefined;
  preview: { dataUrl: string; fresh: boolean } | undefined;
  lastPreviewAt: number;
  stopping: 'cancel' | 'fail' | undefined;
  /** When it last made progress (a frame, a submission): a task no worker takes must not wait forever. */
  lastActivity: number;
  /** When its last frame was written, to spare subscribers a burst of frames that only change `node`. */
  lastFrameAt: number;
  /** Frames of one task are written and published in order. */
  chain: Promise<unknown>;
}

const now = () => new Date().toISOString();

/** Longest wait for one prompt to be queued before the next is submitted anyway. */
const SUBMIT_ORDER_WAIT_MS = 2000;

/** Least time between two frames that only report a new executing node. */
const NODE_FRAME_INTERVAL_MS = 250;

export class TaskEngine {
  private readonly db: Db;
  private readonly pool: WorkerPool;
  private readonly bus: ProgressBus;
  private readonly workflow: Workflow;
  private readonly dataDir: string;
  private readonly maxConcurrentTasks: number;
  private readonly imageTimeoutMs: number;
  private readonly instance: string;
  private readonly leaseMs: number;
  private readonly maxAttempts: number;
  private readonly previewIntervalMs: number;
  private readonly cleanupDays: number;
  private readonly cleanupIntervalMs: number;
  private readonly tickMs: number;
  private readonly keepImageMetadata: boolean;
  private readonly storageRetryMaxMs: number;
  private readonly log: Logger;

  private readonly active = new Map<string, ActiveTask>();
  /** Reference images on each server (url -> sha256 -> its name there), shared by concurrent callers. */
  private readonly referenceNames = new Map<string, Map<string, Promise<string>>>();
  /** Queue positions last announced, to publish only changes. */
  private readonly announced = new Map<string, number>();
  private readonly running = new Set<Promise<void>>();
  private timers: NodeJS.Timeout[] = [];
  private noWorkerSince: number | undefined;
  private ticking = false;
  private tickAgain = false;
  /** Recovery has run: before that, scheduling would claim tasks that recovery then takes for a previous run's. */
  private started = false;
  private stopped = false;

  constructor(options: EngineOptions) {
    this.db = options.db;
    this.pool = options.pool;
    this.bus = options.bus;
    this.workflow = options.workflow;
    this.dataDir = options.dataDir;
    this.maxConcurrentTasks = options.maxConcurrentTasks ?? 3;
    this.imageTimeoutMs = options.imageTimeoutMs ?? 300_000;
    this.instance = options.instance ?? 'local';
    this.leaseMs = options.leaseMs ?? 60_000;
    this.maxAttempts = options.maxAttempts ?? 4;
    this.previewIntervalMs = options.previewIntervalMs ?? 250;
    this.cleanupDays = options.cleanupDays ?? 7;
    this.cleanupIntervalMs = options.cleanupIntervalMs ?? 3_600_000;
    this.tickMs = options.tickMs ?? 1000;
    this.keepImageMetadata = options.keepImageMetadata ?? false;
    this.storageRetryMaxMs = options.storageRetryMaxMs ?? 5000;
    this.log = options.log ?? silentLogger;
    this.pool.on('up', () => this.wake());
    this.pool.on('down', (member) => this.moveOffDeadWorker(member));
  }

  /** Recovers what a previous run left processing, then starts scheduling. */
  async start(): Promise<void> {
    await this.recover();
    this.started = true;
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.tickMs, () => this.wake());
    every(Math.max(1000, Math.floor(this.leaseMs / 3)), () => void this.renew());
    if (this.cleanupDays > 0) {
      every(this.cleanupIntervalMs, () => void this.cleanup().catch((err: unknown) => this.log.error('cleanup failed', { error: String(err) })));
      void this.cleanup().catch((err: unknown) => this.log.error('cleanup failed', { error: String(err) }));
    }
    this.wake();
  }

  /**
   * Stops scheduling. Prompts in flight keep running on ComfyUI; their tasks stay `processing` and
   * the next start adopts their results. Call before stopping the pool.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.all([...this.active.values()].map((t) => t.chain.catch(() => undefined)));
  }

  /** Waits until every image run started so far has settled (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running]);
  }

  /** Asks for a scheduling pass soon (a task was added, a slot freed). */
  wake(): void {
    if (this.stopped || !this.started) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = true;
    void this.tick()
      .catch((err: unknown) => this.log.error('scheduling failed', { error: String(err) }))
      .finally(() => {
        this.ticking = false;
        if (this.tickAgain) {
          this.tickAgain = false;
          this.wake();
        }
      });
  }

  /** Announces a new task's queue position (the service calls this after inserting it). */
  async announceQueue(): Promise<void> {
    const ids = await pendingTaskIds(this.db);
    for (const [id] of this.announced) if (!ids.includes(id)) this.announced.delete(id);
    for (const [i, id] of ids.slice(0, 500).entries()) {
      const position = i + 1;
      if (this.announced.get(id) === position) continue;
      this.announced.set(id, position);
      await this.persistAndPublish(id, {}, { ...emptyFrame(id, 'pending', 0), queuePosition: position }, ['pending']);
    }
  }

  /**
   * Cancels a task: a pending one at once; a processing one has its waiting prompts deleted from
   * ComfyUI's queues and its running prompts interrupted. Finished images are kept. Returns the
   * task as it ends up, or undefined when there is no such task.
   */
  async cancel(taskId: string): Promise<TaskRow | undefined> {
    const row = await findTask(this.db, taskId);
    if (!row) return undefined;
    if (row.status === 'pending') {
      const seq = await this.persistAndPublish(
        taskId,
        { status: 'cancelled', finished_at: now(), updated_at: now() },
        emptyFrame(taskId, 'cancelled', row.progress),
        ['pending'],
      );
      if (seq !== undefined) {
        await finishOpenImages(this.db, taskId, 'cancelled', now());
        this.log.info('task cancelled', { task: taskId, was: 'pending' });
        await this.announceQueue();
        return findTask(this.db, taskId);
      }
    }
    const task = this.active.get(taskId);
    if (task && !task.stopping) await this.stopTask(task, 'cancel', undefined);
    return findTask(this.db, taskId);
  }

  // -------------------------------------------------------------------------------------------
  // Scheduling
  // -------------------------------------------------------------------------------------------

  private async tick(): Promise<void> {
    let claimed = false;
    for (;;) {
      const row = await claimNextPending(this.db, {
        instance: this.instance,
        now: now(),
        leaseUntil: new Date(Date.now() + this.leaseMs).toISOString(),
        maxProcessing: this.maxConcurrentTasks,
      });
      if (!row) break;
      claimed = true;
      this.announced.delete(row.id);
      const task = this.activate(row);
      this.log.info('task processing', { task: row.id, count: row.count });
      await this.emit(task, {}, { ...emptyFrame(row.id, 'processing', task.progress), etaSeconds: null });
    }
    if (claimed) await this.announceQueue();
    if (this.stopped) return;
    await this.failStarved();
    const free = this.pool.freeSlots();
    if (free === 0) return;
    for (const image of await waitingImages(this.db, this.instance, free)) {
      const task = this.active.get(image.task_id);
      if (!task || task.stopping) continue;
      const member = this.pool.acquire();
      if (!member) break;
      const assigned = await assignImage(this.db, image.task_id, image.idx, member.url, now());
      if (!assigned) {
        this.pool.release(member);
        continue;
      }
      if (assigned.attempts > this.maxAttempts) {
        this.pool.release(member);
        await this.stopTask(task, 'fail', `image ${image.idx} could not be completed after ${this.maxAttempts} attempts`);
        continue;
      }
      task.lastActivity = Date.now();
      this.log.debug('image assigned', { task: task.row.id, index: image.idx, worker: member.url, prompt_id: image.prompt_id, attempt: assigned.attempts });
      // Submit in queue order: the next prompt is posted once this one is in ComfyUI's queue, so
      // images (and tasks) run in the order they were taken, not in the order their POSTs landed.
      await Promise.race([this.startImage(task, assigned, member, 'run'), sleep(SUBMIT_ORDER_WAIT_MS)]);
    }
  }

  /**
   * With no worker reachable for longer than an image may take, fails the processing tasks that
   * have nothing running (busy workers are no reason: those tasks are merely waiting their turn).
   */
  private async failStarved(): Promise<void> {
    if (this.pool.members.some((m) => m.healthy)) {
      this.noWorkerSince = undefined;
      return;
    }
    this.noWorkerSince ??= Date.now();
    if (Date.now() - this.noWorkerSince < this.imageTimeoutMs) return;
    for (const task of [...this.active.values()]) {
      if (task.stopping || task.steps.size > 0 || Date.now() - task.lastActivity < this.imageTimeoutMs) continue;
      const workers = this.pool.members.map((m) => `${m.url} (${m.healthy ? 'busy' : (m.lastError ?? 'down')})`).join(', ');
      await this.stopTask(task, 'fail', `no ComfyUI worker was reachable for ${Math.round(this.imageTimeoutMs / 1000)} s: ${workers}`);
    }
  }

  private activate(row: TaskRow): ActiveTask {
    const existing = this.active.get(row.id);
    if (existing) return existing;
    const task: ActiveTask = {
      row,
      steps: new Map(),
      progress: row.progress,
      stepMs: undefined,
      preview: undefined,
      lastPreviewAt: 0,
      stopping: undefined,
      done: 0,
      lastActivity: Date.now(),
      lastFrameAt: 0,
      chain: Promise.resolve(),
    };
    this.active.set(row.id, task);
    return task;
  }

  /** Starts an image's run; resolves once ComfyUI has queued its prompt (or the run ended first). */
  private startImage(task: ActiveTask, image: ImageRow, member: PoolMember, mode: 'run' | 'attach'): Promise<void> {
    let accepted!: () => void;
    const queued = new Promise<void>((resolve) => (accepted = resolve));
    const p = this.runImage(task, image, member, mode, accepted)
      .catch((err: unknown) => this.log.error('image run ended unexpectedly', { task: task.row.id, index: image.idx, error: String(err) }))
      .finally(() => {
        accepted();
        this.pool.release(member);
        this.running.delete(p);
        this.wake();
      });
    this.running.add(p);
    return queued;
  }

  /** Runs (or re-attaches to) one image's prompt and records its outcome. */
  private async runImage(task: ActiveTask, image: ImageRow, member: PoolMember, mode: 'run' | 'attach', accepted: () => void): Promise<void> {
    const id = task.row.id;
    task.steps.set(image.idx, { step: 0, total: task.row.steps, node: null, lastStepAt: 0, member, promptId: image.prompt_id });
    const onEvent = (e: PromptEvent) => {
      if (e.type === 'queued' || e.type === 'started') accepted();
      this.onPromptEvent(task, image.idx, e);
    };
    const options = { outputNode: this.workflow.binding.outputNode, timeoutMs: this.imageTimeoutMs, onEvent };
    try {
      let result: PromptResult;
      if (mode === 'attach') {
        result = await member.worker.attach(image.prompt_id, options);
      } else {
        const prompt = bindWorkflow(this.workflow, {
          description: task.row.description,
          seed: image.seed,
          steps: task.row.steps,
          guidance: task.row.guidance,
          size: task.row.size === 'auto' ? 'auto' : (parseSize(task.row.size) ?? 'auto'),
          referenceImage: await this.referenceOn(member, task.row.upload_sha256),
          filenamePrefix: `kontext/${id}_${image.idx}`,
        });
        if (task.stopping) return; // cancelled while the reference was uploading
        result = await member.worker.run(image.prompt_id, prompt, options);
      }
      await this.adoptResult(task, image, member, result);
    } catch (err) {
      try {
        await this.onImageError(task, image, member, err as Error);
      } catch (recordErr) {
        // Only when stopping (or a bug): the next start reconciles the image from the database.
        this.log.error('could not record the outcome of an image', { task: id, index: image.idx, error: String(recordErr), outcome: (err as Error).message });
      }
    } finally {
      task.steps.delete(image.idx);
    }
  }

  /** Downloads a finished image, records it, announces it, and completes the task when it was the last. */
  private async adoptResult(task: ActiveTask, image: ImageRow, member: PoolMember, result: PromptResult): Promise<void> {
    const file = result.images[0];
    if (!file) throw new Error(`ComfyUI at ${member.url} finished prompt ${image.prompt_id} without an image from node ${this.workflow.binding.outputNode}`);
    const id = task.row.id;
    // The GPU's work is done and stays in ComfyUI's history: with the disk full, wait for space rather than lose it.
    const stored = await this.durably(`storing image ${image.idx} of task ${id}`, () => this.storeResult(task, image, member, file));
    const recorded = await this.durably(`recording image ${image.idx} of task ${id}`, () =>
      updateImage(this.db, id, image.idx, { status: 'completed', ...stored.row, finished_at: now() }, ['submitted', 'running']),
    );
    if (!recorded) return; // cancelled or failed meanwhile
    task.steps.delete(image.idx); // counted as done from here on, not also as a running image
    this.log.info('image ready', { task: id, index: image.idx, worker: member.url, cached: result.cached });
    const done = (await imagesOfTask(this.db, id)).filter((i) => i.status === 'completed');
    task.done = done.length;
    const { width, height, bytes, content_type: contentType } = stored.row;
    const frameImage: FrameImage = { index: image.idx, width, height, seed: image.seed, contentType, bytes };
    const resultPath = this.resultPath(done);
    const complete = done.length === task.row.count;
    task.progress = Math.max(task.progress, complete ? 100 : this.computeProgress(task, done.length));
    if (complete) {
      await this.durably(`completing task ${id}`, () => this.finish(task, 'completed', { result_path: resultPath, progress: 100 }, { image: frameImage }));
    } else {
      const frame = { ...emptyFrame(id, 'processing', task.progress), imageIndex: image.idx, image: frameImage, etaSeconds: this.eta(task, done.length) };
      await this.durably(`announcing image ${image.idx} of task ${id}`, () => this.emit(task, { result_path: resultPath, progress: task.progress }, frame));
    }
  }

  /** Downloads, checks and places a result file (`images/<task>/<index>.<ext>`); its image row fields. */
  private async storeResult(
    task: ActiveTask,
    image: ImageRow,
    member: PoolMember,
    file: PromptResult['images'][number],
  ): Promise<{ row: { file_path: string; width: number; height: number; bytes: number; content_type: string } }> {
    const id = task.row.id;
    const tmp = join(this.dataDir, 'images', id, `.${image.idx}.download`);
    await mkdir(dirname(tmp), { recursive: true });
    let { bytes } = await member.worker.http.downloadView(file, tmp, { maxBytes: 200 * 1024 * 1024 });
    let meta;
    try {
      meta = await sharp(tmp).metadata();
    } catch {
      meta = undefined;
    }
    const format = meta?.format === 'jpeg' ? 'jpg' : meta?.format;
    if (!meta?.width || !meta.height || (format !== 'png' && format !== 'jpg' && format !== 'webp')) {
      await rm(tmp, { force: true });
      throw new Error(`ComfyUI at ${member.url} returned ${file.filename}, which is not a PNG, JPEG or WebP image`);
    }
    // ComfyUI writes the whole workflow and prompt into its PNGs: not for whoever downloads the image.
    if (format === 'png' && !this.keepImageMetadata) bytes = await stripPngMetadata(tmp);
    const relative = join('images', id, `${image.idx}.${format}`);
    await rename(tmp, join(this.dataDir, relative));
    const contentType = format === 'jpg' ? 'image/jpeg' : `image/${format}`;
    return { row: { file_path: relative, width: meta.width, height: meta.height, bytes, content_type: contentType } };
  }

  /**
   * Runs a state change that must not be lost (an image stored or recorded, a task ended): while the
   * disk or the database is unavailable (full, locked, read-only) it is tried again with backoff until
   * it goes through or the engine stops. Other errors are thrown at once.
   */
  private async durably<T>(what: string, change: () => Promise<T>): Promise<T> {
    for (let wait = 250; ; wait = Math.min(this.storageRetryMaxMs, wait * 2)) {
      try {
        return await change();
      } catch (err) {
        if (this.stopped || !isStorageUnavailable(err)) throw err;
        this.log.warn(`${what} failed; trying again`, { error: describeWriteError(err), retry_ms: wait });
        await sleep(wait);
      }
    }
  }

  private async onImageError(task: ActiveTask, image: ImageRow, member: PoolMember, err: Error): Promise<void> {
    const id = task.row.id;
    if (task.stopping) return; // the cancel or failure already settled every image
    if (this.stopped) return; // shutting down (connections are closing): the next start reconciles it
    if (err instanceof ComfyInterruptedError) {
      await this.stopTask(task, 'fail', `image ${image.idx} was interrupted on ComfyUI at ${member.url} by someone else`);
      return;
    }
    // The image's own run took longer than COMFYUI_TIMEOUT (time waiting in the queue does not count).
    if (err instanceof ComfyRunTimeoutError) {
      await this.stopTask(task, 'fail', `image ${image.idx} timed out on ComfyUI at ${member.url} after ${Math.round(this.imageTimeoutMs / 1000)} s`);
      return;
    }
    // Stuck in a queue and maybe still there (the server did not answer): running it elsewhere could run it twice.
    if (err instanceof ComfyQueueTimeoutError && !err.removed) {
      await this.stopTask(task, 'fail', `image ${image.idx}: ${err.message}`);
      return;
    }
    const retryable =
      err instanceof ComfyPromptVanishedError ||
      (err instanceof ComfyError && (err.code === 'UNREACHABLE' || err.code === 'STOPPED' || err.code === 'TIMEOUT'));
    if (retryable) {
      const current = await findImage(this.db, id, image.idx);
      if (current && current.attempts < this.maxAttempts) {
        this.log.warn('image will be resubmitted', { task: id, index: image.idx, worker: member.url, reason: err.message });
        await this.durably(`requeueing image ${image.idx} of task ${id}`, () =>
          updateImage(this.db, id, image.idx, { status: 'pending', worker: null }, ['submitted', 'running']),
        );
        return;
      }
    }
    this.log.error('image failed', { task: id, index: image.idx, worker: member.url, error: err.message });
    await this.stopTask(task, 'fail', `image ${image.idx}: ${err.message}`);
  }

  /** Ends a processing task early: cancelled by a user, or failed. Finished images are kept. */
  private async stopTask(task: ActiveTask, why: 'cancel' | 'fail', error: string | undefined): Promise<void> {
    if (task.stopping) return;
    task.stopping = why;
    const id = task.row.id;
    const open = await this.durably(`ending the images of task ${id}`, () => finishOpenImages(this.db, id, why === 'cancel' ? 'cancelled' : 'failed', now()));
    await Promise.all(
      open
        .filter((i) => i.worker && i.status !== 'pending')
        .map(async (i) => {
          const member = this.pool.get(i.worker!);
          await member?.worker.cancel(i.prompt_id).catch((e: unknown) =>
            this.log.warn('could not cancel a prompt on ComfyUI', { task: id, worker: i.worker, error: String(e) }),
          );
        }),
    );
    await this.durably(`ending task ${id}`, () =>
      this.finish(task, why === 'cancel' ? 'cancelled' : 'failed', { error_message: error ?? null }, { error: error ?? null }),
    );
  }

  private async finish(task: ActiveTask, status: TaskStatus, changes: TaskUpdate, extra: Partial<ProgressFrame>): Promise<void> {
    const id = task.row.id;
    this.active.delete(id);
    await this.emit(task, { ...changes, status, finished_at: now(), claimed_by: null, lease_expires_at: null }, {
      ...emptyFrame(id, status, task.progress),
      ...extra,
    });
    this.log.info(`task ${status}`, { task: id, ...(changes.error_message ? { error: changes.error_message } : {}) });
  }

  // -------------------------------------------------------------------------------------------
  // Progress
  // -------------------------------------------------------------------------------------------

  private onPromptEvent(task: ActiveTask, idx: number, e: PromptEvent): void {
    const state = task.steps.get(idx);
    if (!state || task.stopping) return;
    const id = task.row.id;
    const t = Date.now();
    switch (e.type) {
      case 'started':
        this.log.debug('image started on ComfyUI', { task: id, index: idx });
        // Informational: a failed write is reported by the database's health; the image's end is what counts.
        updateImage(this.db, id, idx, { status: 'running' }, ['submitted']).catch((err: unknown) =>
          this.log.warn('could not record that an image started', { task: id, index: idx, error: describeWriteError(err) }),
        );
        break;
      case 'cached':
        this.log.debug('ComfyUI served nodes from its cache', { task: id, index: idx, nodes: e.nodes });
        return;
      case 'executing':
        state.node = e.node;
        // A fresh prompt runs a dozen quick nodes before sampling: one frame each would be written and
        // fanned out to every subscriber for nothing; the next frame carries the node anyway.
        if (t - task.lastFrameAt < NODE_FRAME_INTERVAL_MS) return;
        break;
      case 'progress': {
        if (state.lastStepAt && e.value > state.step) {
          const per = (t - state.lastStepAt) / (e.value - state.step);
          task.stepMs = task.stepMs === undefined ? per : task.stepMs * 0.7 + per * 0.3;
        }
        state.step = e.value;
        state.total = e.max;
        state.lastStepAt = t;
        if (e.node) state.node = e.node;
        break;
      }
      case 'preview':
        task.preview = { dataUrl: `data:${e.mime};base64,${e.image.toString('base64')}`, fresh: true };
        return; // sent with the next step's frame
      default:
        return;
    }
    // A step frame that cannot be written is skipped: the next one carries the whole state again.
    this.emitStep(task, idx).catch((err: unknown) => this.log.debug('progress frame not written', { task: id, error: describeWriteError(err) }));
  }

  private async emitStep(task: ActiveTask, idx: number): Promise<void> {
    const state = task.steps.get(idx);
    if (!state) return;
    const id = task.row.id;
    const done = task.done;
    task.progress = Math.max(task.progress, this.computeProgress(task, done));
    let preview: string | null = null;
    if (task.preview?.fresh && Date.now() - task.lastPreviewAt >= this.previewIntervalMs) {
      preview = task.preview.dataUrl;
      task.preview.fresh = false;
      task.lastPreviewAt = Date.now();
    }
    await this.emit(
      task,
      { progress: task.progress },
      {
        ...emptyFrame(id, 'processing', task.progress),
        imageIndex: idx,
        step: state.step,
        totalSteps: state.total,
        node: state.node,
        etaSeconds: this.eta(task, done),
        preview,
      },
    );
  }

  /** Finished images plus the running images' step fractions, in percent (below 100 until all are done). */
  private computeProgress(task: ActiveTask, done: number): number {
    let partial = 0;
    for (const s of task.steps.values()) partial += s.total > 0 ? Math.min(1, s.step / s.total) : 0;
    return Math.min(99, Math.floor((100 * (done + partial)) / task.row.count));
  }

  /** Remaining sampler steps times the measured step time, shared by the images running in parallel. */
  private eta(task: ActiveTask, done: number): number | null {
    if (task.stepMs === undefined) return null;
    const running = [...task.steps.values()];
    const remainingRunning = running.reduce((n, s) => n + Math.max(0, s.total - s.step), 0);
    const notStarted = Math.max(0, task.row.count - done - running.length) * task.row.steps;
    const parallel = Math.max(1, running.length);
    return Math.round(((remainingRunning + notStarted) * task.stepMs) / parallel / 100) / 10;
  }

  /** Persists and publishes a frame of an active task, in order with its other frames. */
  private emit(task: ActiveTask, changes: TaskUpdate, frame: Omit<ProgressFrame, 'seq'>): Promise<number | undefined> {
    task.lastActivity = Date.now();
    task.lastFrameAt = task.lastActivity;
    const next = task.chain.then(() => this.persistAndPublish(task.row.id, changes, frame, ['processing']));
    task.chain = next.catch(() => undefined);
    return next;
  }

  /** Frames are persisted, then published: a subscriber never sees a state the database does not have. */
  private async persistAndPublish(
    taskId: string,
    changes: TaskUpdate,
    frame: Omit<ProgressFrame, 'seq'>,
    onlyIf: readonly TaskStatus[],
  ): Promise<number | undefined> {
    const { preview, ...stored } = frame;
    const seq = await saveFrame(this.db, taskId, { ...changes, updated_at: now() }, { ...stored, preview: null }, onlyIf);
    if (seq !== undefined) this.bus.publish({ ...frame, preview, seq });
    return seq;
  }

  // -------------------------------------------------------------------------------------------
  // Workers, recovery, leases, cleanup
  // -------------------------------------------------------------------------------------------

  /** The reference image's name on a server, uploading it there the first time. */
  private referenceOn(member: PoolMember, sha256: string | null): Promise<string> {
    if (!sha256) return Promise.reject(new Error('the task has no reference image'));
    let names = this.referenceNames.get(member.url);
    if (!names) this.referenceNames.set(member.url, (names = new Map()));
    let name = names.get(sha256);
    if (!name) {
      // One upload per server and image, even when several images of a task start at once.
      name = this.uploadReference(member, sha256);
      names.set(sha256, name);
      name.catch(() => names.delete(sha256));
    }
    return name;
  }

  private async uploadReference(member: PoolMember, sha256: string): Promise<string> {
    const upload = await findUpload(this.db, sha256);
    if (!upload) throw new Error(`the reference image ${sha256} is no longer stored`);
    const data = await readFile(join(this.dataDir, upload.file_path));
    const name = upload.file_path.replace(/^.*[\\/]/, '');
    // The name is the content hash, so overwriting can only write the same bytes (and avoids "name (1).png").
    const stored = await member.worker.http.uploadImage(data, name, { overwrite: true });
    return stored.subfolder ? `${stored.subfolder}/${stored.name}` : stored.name;
  }

  /** A server went down: its images go back to the queue, to run on the others (same prompt_id). */
  private moveOffDeadWorker(member: PoolMember): void {
    this.referenceNames.delete(member.url);
    for (const task of this.active.values()) {
      for (const [idx, s] of task.steps) {
        if (s.member === member) member.worker.release(s.promptId, `ComfyUI at ${member.url} is down; moving image ${idx} to another worker`);
      }
    }
  }

  /**
   * Makes a server that was down (hung, cut off) safe to use again, before it gets new work. While it
   * was away its images moved to other servers under the same prompt ids, and some of their tasks
   * ended; its queue still holds those prompts and would run them when it wakes. Each of our prompts
   * there is kept if its image is still assigned to this server, taken back if its image is waiting
   * for a worker, and otherwise deleted from the queue (or interrupted when running). Prompts of other
   * clients are never touched. Throws when the server cannot be asked: it then stays out of rotation.
   */
  async reconcileReturningWorker(member: PoolMember): Promise<void> {
    const http = member.worker.http;
    const queue = await http.getQueue();
    const running = new Set(queue.queue_running.map((item) => item[1]));
    const queued = [...queue.queue_running, ...queue.queue_pending].map((item) => item[1]);
    const stale: string[] = [];
    for (const image of await imagesByPromptId(this.db, queued)) {
      const open = image.status === 'submitted' || image.status === 'running';
      if (open && image.worker === member.url) continue; // it runs here by our records: recovery or the run follows it
      if (image.status === 'pending' && (await this.takeBack(image, member))) continue;
      stale.push(image.prompt_id);
    }
    if (stale.length === 0) return;
    const waiting = stale.filter((id) => !running.has(id));
    if (waiting.length > 0) await http.deleteQueued(waiting);
    for (const id of stale.filter((p) => running.has(p))) await http.interrupt(id);
    this.log.warn('removed prompts that ran elsewhere or whose task ended from a returning ComfyUI server', {
      worker: member.url,
      deleted: waiting.length,
      interrupted: stale.length - waiting.length,
    });
  }

  /** An image waiting for a worker whose prompt is still in `member`'s queue: follow it there instead of running it again. */
  private async takeBack(image: ImageRow, member: PoolMember): Promise<boolean> {
    const task = this.active.get(image.task_id);
    if (!task || task.stopping || !this.started) return false;
    const assigned = await assignImage(this.db, image.task_id, image.idx, member.url, now());
    if (!assigned) return false; // another server took it meanwhile
    const slot = this.pool.occupy(member.url);
    if (!slot) return false;
    this.log.info('image taken back by its returning server', { task: image.task_id, index: image.idx, worker: member.url });
    void this.startImage(task, assigned, slot, 'attach');
    return true;
  }

  private async recover(): Promise<void> {
    const tasks = await findRecoverable(this.db, { instance: this.instance, now: now() });
    if (tasks.length === 0) return;
    await reclaim(
      this.db,
      tasks.map((t) => t.id),
      { instance: this.instance, leaseUntil: new Date(Date.now() + this.leaseMs).toISOString() },
    );
    for (const row of tasks) {
      const task = this.activate(row);
      if (await this.settleIfDone(task)) continue;
      const images = await inFlightImages(this.db, row.id);
      this.log.info('recovering task', { task: row.id, in_flight: images.length });
      for (const image of images) {
        const member = image.worker ? this.pool.occupy(image.worker) : undefined;
        if (!member) {
          await updateImage(this.db, row.id, image.idx, { status: 'pending', worker: null });
          continue;
        }
        void this.startImage(task, image, member, 'attach');
      }
    }
  }

  /** The old service's `result_path`: the JSON list of the finished images' file paths. */
  private resultPath(done: ImageRow[]): string {
    return JSON.stringify(done.map((i) => join(this.dataDir, i.file_path!)));
  }

  /** A crash between an image's last write and the task's: finish the task from its images. */
  private async settleIfDone(task: ActiveTask): Promise<boolean> {
    const images = await imagesOfTask(this.db, task.row.id);
    const done = images.filter((i) => i.status === 'completed');
    task.done = done.length;
    if (images.some((i) => i.status === 'pending' || i.status === 'submitted' || i.status === 'running')) return false;
    if (done.length === images.length) {
      task.progress = 100;
      const resultPath = this.resultPath(done);
      await this.finish(task, 'completed', { result_path: resultPath, progress: 100 }, {});
    } else {
      task.stopping = 'fail';
      await this.finish(task, 'failed', { error_message: task.row.error_message ?? 'interrupted by a restart' }, { error: task.row.error_message });
    }
    return true;
  }

  private async renew(): Promise<void> {
    try {
      await renewLeases(this.db, { instance: this.instance, leaseUntil: new Date(Date.now() + this.leaseMs).toISOString() });
    } catch (err) {
      this.log.error('could not renew task claims', { error: String(err) });
    }
  }

  /** Deletes finished tasks older than `days` (default `cleanupDays`) with their files; returns how many. */
  cleanup(days = this.cleanupDays): Promise<number> {
    return deleteOldTasks({ db: this.db, dataDir: this.dataDir, days, log: this.log });
  }

  /** Ids of the processing tasks this engine is looking after. */
  activeTaskIds(): string[] {
    return [...this.active.keys()];
  }
}
