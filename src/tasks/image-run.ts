/**
 * One image's run, from submission (or re-attachment after a restart) to its outcome: the prompt is
 * bound and run on a server, its events become progress frames, its result is stored and recorded,
 * and a failure is either retried (the image goes back to the queue under the same prompt id) or
 * ends the task.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PromptEvent, PromptResult } from '../comfyui/backend.js';
import {
  ComfyError,
  ComfyInterruptedError,
  ComfyPromptVanishedError,
  ComfyQueueTimeoutError,
  ComfyRunTimeoutError,
} from '../comfyui/errors.js';
import { bindWorkflow, type Workflow } from '../comfyui/workflow.js';
import { findImage } from '../db/images.js';
import type { ImageRow } from '../db/types.js';
import { describeWriteError } from '../db/write-health.js';
import type { ActiveTask } from './active-task.js';
import { parseSize } from './generate-params.js';
import { etaSeconds, nodeFrameDue, recordStep, takePreview, taskProgress } from './progress.js';
import { emptyFrame } from './progress-frame.js';
import type { ReferenceCache } from './reference-cache.js';
import type { ResultStore } from './result-store.js';
import type { EngineContext } from './engine-context.js';
import type { PoolMember } from './worker-pool.js';

/** How a task ends early; the engine owns it (it also forgets the task and cancels its prompts). */
export type EndTask = (task: ActiveTask, why: 'cancel' | 'fail', error: string | null, failed?: { index: number; worker: string | null }) => Promise<void>;

/** What an image run needs; the engine passes it in. */
export interface ImageRunDeps extends EngineContext {
  workflow: Workflow;
  references: ReferenceCache;
  results: ResultStore;
  /** Limit of an image's own run on ComfyUI, in ms (COMFYUI_TIMEOUT). */
  imageTimeoutMs: number;
  /** DATA_DIR, absolute. */
  dataDir: string;
  /** Submissions of one image before its task fails. */
  maxAttempts: number;
  /** Least time between two previews published for one task, in ms. */
  previewIntervalMs: number;
  /** Least time between two frames that only report a new executing node, in ms. */
  nodeFrameIntervalMs: number;
  /** Retries a state change while storage is unavailable (see storage-retry.ts). */
  durably: <T>(what: string, change: () => Promise<T>) => Promise<T>;
  /** True once the engine is stopping: outcomes are then left for the next start to reconcile. */
  stopping: () => boolean;
  endTask: EndTask;
  /** The task completed: forget it. */
  taskCompleted: (task: ActiveTask) => void;
  /** A slot is free: schedule again. */
  wake: () => void;
}

/** Longest wait for the previous prompt on a server to be queued before the next is posted anyway. */
const SUBMIT_ORDER_WAIT_MS = 2000;

export class ImageRunner {
  private readonly running = new Set<Promise<void>>();

  /**
   * Per server: settles once the prompt last handed to it is in its queue (or its run ended). The
   * next prompt for that server is posted after it, so each server runs its images in queue order,
   * while prompts for different servers go out together: over a link with latency, waiting for
   * one server's answer before posting to the next left the last servers idle for hundreds of ms.
   */
  private readonly lastQueued = new Map<string, Promise<void>>();

  constructor(private readonly deps: ImageRunDeps) {}

  /**
   * Starts an image's run on `member` (whose slot it holds, and releases at the end). Resolves at
   * once: its prompt is posted after the one handed to the same server before it is queued there.
   */
  start(task: ActiveTask, image: ImageRow, member: PoolMember, mode: 'run' | 'attach'): Promise<void> {
    const { log, pool, events } = this.deps;
    let accepted!: () => void;
    const queued = new Promise<void>((resolve) => (accepted = resolve));
    // Re-attaching posts nothing, so it neither waits nor holds up the next post.
    const before = mode === 'run' ? this.lastQueued.get(member.url) : undefined;
    if (mode === 'run') {
      this.lastQueued.set(member.url, queued);
      void queued.then(() => {
        if (this.lastQueued.get(member.url) === queued) this.lastQueued.delete(member.url);
      });
    }
    events.emit('image.submitted', { taskId: task.row.id, index: image.idx, worker: member.url, promptId: image.prompt_id, attempt: image.attempts, mode });
    const p = this.run(task, image, member, mode, accepted, before)
      .catch((err: unknown) => log.error('image run ended unexpectedly', { task: task.row.id, index: image.idx, error: String(err) }))
      .finally(() => {
        accepted();
        pool.release(member);
        this.running.delete(p);
        this.deps.wake();
      });
    this.running.add(p);
    return Promise.resolve();
  }

  /** Waits until every run started so far has settled. */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running]);
  }

  private async run(task: ActiveTask, image: ImageRow, member: PoolMember, mode: 'run' | 'attach', accepted: () => void, before?: Promise<void>): Promise<void> {
    const { workflow } = this.deps;
    const id = task.row.id;
    task.running.set(image.idx, { step: 0, total: task.row.steps, node: null, lastStepAt: 0, member, promptId: image.prompt_id });
    const onEvent = (e: PromptEvent) => {
      if (e.type === 'queued' || e.type === 'started') accepted();
      this.onPromptEvent(task, image.idx, e);
    };
    const options = { outputNode: workflow.binding.outputNode, timeoutMs: this.deps.imageTimeoutMs, onEvent };
    try {
      let result: PromptResult;
      if (mode === 'attach') {
        result = await member.worker.attach(image.prompt_id, options);
      } else {
        const prompt = bindWorkflow(workflow, {
          description: task.row.description,
          seed: image.seed,
          steps: task.row.steps,
          guidance: task.row.guidance,
          size: task.row.size === 'auto' ? 'auto' : (parseSize(task.row.size) ?? 'auto'),
          referenceImage: await this.deps.references.nameOn(member.worker, task.row.upload_sha256),
          filenamePrefix: `kontext/${id}_${image.idx}`,
        });
        // In queue order on this server, but not stuck behind a submission that hangs.
        if (before) await Promise.race([before, sleep(SUBMIT_ORDER_WAIT_MS, undefined, { ref: false })]);
        if (task.stopping) return; // cancelled while the reference was uploading
        result = await member.worker.run(image.prompt_id, prompt, options);
      }
      await this.adopt(task, image, member, result);
    } catch (err) {
      try {
        await this.onError(task, image, member, err as Error);
      } catch (recordErr) {
        // Only when stopping (or a bug): the next start reconciles the image from the database.
        this.deps.log.error('could not record the outcome of an image', { task: id, index: image.idx, error: String(recordErr), outcome: (err as Error).message });
      }
    } finally {
      task.running.delete(image.idx);
    }
  }

  /** Stores a finished image, records it (completing the task when it was the last) and announces it. */
  private async adopt(task: ActiveTask, image: ImageRow, member: PoolMember, result: PromptResult): Promise<void> {
    const { db, transitions, publisher, durably, events } = this.deps;
    const file = result.images[0];
    if (!file) throw new Error(`ComfyUI at ${member.url} finished prompt ${image.prompt_id} without an image from node ${this.deps.workflow.binding.outputNode}`);
    const id = task.row.id;
    // The GPU's work is done and stays in ComfyUI's history: with the disk full, wait for space rather than lose it.
    const stored = await durably(`storing image ${image.idx} of task ${id}`, () => this.deps.results.store(member.worker, id, image.idx, file));
    task.running.delete(image.idx); // counted as done from here on, not also as a running image
    const progressWith = (done: number) => {
      task.progress = Math.max(task.progress, taskProgress(task, done));
      return { progress: task.progress, etaSeconds: etaSeconds(task, done) };
    };
    const completed = await durably(`recording image ${image.idx} of task ${id}`, () =>
      publisher.run(id, () => transitions.completeImage(db, { taskId: id, image, stored, dataDir: this.deps.dataDir, progressWith, holder: this.deps.instance })),
    );
    if (!completed) return; // cancelled or failed meanwhile
    task.done = completed.done.length;
    task.lastActivity = task.lastFrameAt = Date.now();
    events.emit('image.ready', { taskId: id, index: image.idx, worker: member.url, cached: result.cached, bytes: stored.bytes });
    if (completed.taskCompleted) {
      task.progress = 100;
      this.deps.taskCompleted(task);
      events.emit('task.finished', { taskId: id, status: 'completed', error: null, was: 'processing' });
    }
  }

  /** Decides what a failed run means: nothing (the task is ending), a retry elsewhere, or the task's failure. */
  private async onError(task: ActiveTask, image: ImageRow, member: PoolMember, err: Error): Promise<void> {
    const { db, transitions, durably, events, maxAttempts } = this.deps;
    const id = task.row.id;
    if (task.stopping) return; // the cancel or failure already settled every image
    if (this.deps.stopping()) return; // shutting down (connections are closing): the next start reconciles it
    const fail = (error: string) => this.deps.endTask(task, 'fail', error, { index: image.idx, worker: member.url });
    if (err instanceof ComfyInterruptedError) return fail(`image ${image.idx} was interrupted on ComfyUI at ${member.url} by someone else`);
    // The image's own run took longer than COMFYUI_TIMEOUT (time waiting in the queue does not count).
    if (err instanceof ComfyRunTimeoutError) {
      return fail(`image ${image.idx} timed out on ComfyUI at ${member.url} after ${Math.round(this.deps.imageTimeoutMs / 1000)} s`);
    }
    // Stuck in a queue and maybe still there (the server did not answer): running it elsewhere could run it twice.
    if (err instanceof ComfyQueueTimeoutError && !err.removed) return fail(`image ${image.idx}: ${err.message}`);
    const retryable =
      err instanceof ComfyPromptVanishedError || (err instanceof ComfyError && (err.code === 'UNREACHABLE' || err.code === 'STOPPED' || err.code === 'TIMEOUT'));
    if (retryable) {
      const current = await findImage(db, id, image.idx);
      if (current && current.attempts < maxAttempts) {
        const requeued = await durably(`requeueing image ${image.idx} of task ${id}`, () => transitions.requeueImage(db, id, image.idx, err.message));
        if (requeued) events.emit('image.resubmitted', { taskId: id, index: image.idx, worker: member.url, reason: err.message });
        return;
      }
    }
    return fail(`image ${image.idx}: ${err.message}`);
  }

  private onPromptEvent(task: ActiveTask, index: number, e: PromptEvent): void {
    const state = task.running.get(index);
    if (!state || task.stopping) return;
    const { db, transitions, log } = this.deps;
    const id = task.row.id;
    const at = Date.now();
    switch (e.type) {
      case 'started':
        log.debug('image started on ComfyUI', { task: id, index });
        // Informational: a failed write is reported by the database's health; the image's end is what counts.
        transitions
          .startImage(db, id, index)
          .catch((err: unknown) => log.warn('could not record that an image started', { task: id, index, error: describeWriteError(err) }));
        return;
      case 'cached':
        log.debug('ComfyUI served nodes from its cache', { task: id, index, nodes: e.nodes });
        return;
      case 'executing':
        state.node = e.node;
        if (!nodeFrameDue(task, at, this.deps.nodeFrameIntervalMs)) return;
        break;
      case 'progress':
        recordStep(task, state, e.value, e.max, at);
        if (e.node) state.node = e.node;
        break;
      case 'preview':
        task.preview = { dataUrl: `data:${e.mime};base64,${e.image.toString('base64')}`, fresh: true };
        return; // sent with the next step's frame
      default:
        return;
    }
    // A step frame that cannot be written is skipped: the next one carries the whole state again.
    this.publishStep(task, index).catch((err: unknown) => log.debug('progress frame not written', { task: id, error: describeWriteError(err) }));
  }

  private async publishStep(task: ActiveTask, index: number): Promise<void> {
    const state = task.running.get(index);
    if (!state) return;
    const id = task.row.id;
    const at = Date.now();
    const preview = takePreview(task, at, this.deps.previewIntervalMs);
    task.lastActivity = task.lastFrameAt = at;
    // Built when its turn in the task's chain comes, not now: a transition queued before it (an image
    // completing) may raise the progress meanwhile, and a frame computed earlier would go back.
    const frame = () => {
      task.progress = Math.max(task.progress, taskProgress(task, task.done));
      return {
        ...emptyFrame(id, 'processing', task.progress),
        imageIndex: index,
        step: state.step,
        totalSteps: state.total,
        node: state.node,
        etaSeconds: etaSeconds(task, task.done),
      };
    };
    await this.deps.publisher.run(id, () => this.deps.transitions.recordProgress(this.deps.db, frame(), this.deps.instance), preview);
  }
}
