/**
 * The service layer GraphQL and REST share: create, read, list and cancel tasks, store uploads,
 * and watch a task's progress. Routes and resolvers stay thin and call only this.
 */
import { randomInt } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { canSee, OPEN_CALLER, type Caller } from '../auth/caller.js';
import type { Db } from '../db/database.js';
import { findImage, imagesOfTask, imagesOfTasks } from '../db/images.js';
import { countByStatus, findTask, findTaskByIdempotencyKey, listTasks, pendingTaskIds, queuePosition } from '../db/tasks.js';
import type { ImageRow, TaskRow, TaskStatus } from '../db/types.js';
import { deleteUnreferenced, saveUpload } from '../db/uploads.js';
import type { BlobStore } from '../storage/blob-store.js';
import { FileStore } from '../storage/file-store.js';
import { receiveUpload, type StoredUpload } from '../uploads/upload-sink.js';
import type { TaskEngine } from './engine.js';
import { paramsHash, ValidationError, type GenerateParams } from './generate-params.js';
import { newTaskId, promptIdFor } from './ids.js';
import type { ProgressBus } from './progress-bus.js';
import { isFinal, type ProgressFrame } from './progress-frame.js';
import { publicResultPaths } from './public-result-paths.js';
import { storedFrame } from './stored-frame.js';
import { TaskWatch } from './task-watch.js';
import { TaskWatchHub } from './task-watch-hub.js';
import { checkQuotas } from './transitions/enqueue-task.js';
import { storeEvents } from '../webhooks/events.js';
import { checkWebhookTarget, WebhookTargetError, type TargetPolicy } from '../webhooks/target-check.js';

/** A task with its images, as every interface shows it. */
export interface TaskView {
  task: TaskRow;
  images: ImageRow[];
  /** 1 = next to start; only while pending. */
  queuePosition: number | null;
  /** The legacy `result_path` list, relative to DATA_DIR (see publicResultPaths). */
  resultPaths: string[];
}

/** The same idempotency key was used with different parameters. */
export class IdempotencyConflictError extends Error {
  override readonly name = 'IdempotencyConflictError';
  constructor(readonly key: string) {
    super(`idempotencyKey '${key}' was already used for a task with different parameters`);
  }
}

/** Options of the service. */
export interface TaskServiceOptions {
  db: Db;
  engine: TaskEngine;
  bus: ProgressBus;
  /** Absolute. */
  dataDir: string;
  /** Where uploads and images live (STORAGE_URL). @default a folder store over `dataDir` */
  store?: BlobStore;
  /** This replica's local temp folder, where uploads are received and checked. @default `dataDir`/tmp */
  tmpDir?: string;
  /** Largest upload in bytes (MAX_FILE_SIZE). */
  maxFileSize: number;
  /** Largest reference image in pixels, width x height (MAX_IMAGE_PIXELS), read from its header before anything decodes it. Required. */
  maxImagePixels: number;
  /** Recorded on each task. */
  workflowName: string;
  /** What a task's webhook may target (WEBHOOK_ALLOW_HOSTS, the resolver). @default no exceptions, the system resolver */
  webhookTargets?: TargetPolicy;
}

/** Longest accepted `after` cursor: cursors are task ids, UUIDs of 36 characters. */
export const MAX_CURSOR_LENGTH = 36;

export class TaskService {
  /** Where uploads and images live, for routes that serve them. */
  readonly store: BlobStore;
  private readonly tmpDir: string;
  /** Every watch of a task shares its one bus subscription; after a re-sync notice the stored state is read once for all. */
  private readonly hub: TaskWatchHub;

  constructor(private readonly options: TaskServiceOptions) {
    this.store = options.store ?? new FileStore(options.dataDir);
    this.tmpDir = options.tmpDir ?? join(options.dataDir, 'tmp');
    this.hub = new TaskWatchHub(options.bus, (id) => this.snapshot(id, OPEN_CALLER));
  }

  /**
   * Streams a reference image into storage under `uploads/<sha256>.<ext>` (see receiveUpload for what
   * is rejected); the result's `path` is that key. Identical content is stored once.
   */
  async storeReference(source: Readable): Promise<StoredUpload> {
    const { maxFileSize, maxImagePixels, db } = this.options;
    const received = await receiveUpload(source, { dir: this.tmpDir, maxBytes: maxFileSize, maxPixels: maxImagePixels });
    // The key is also the recorded file_path, in the same relative form as before stores existed.
    const key = `uploads/${received.fileName}`;
    let created: boolean;
    try {
      // Two identical uploads at once may both store it (same bytes, atomic puts) and both report `created`.
      created = !(await this.store.exists(key));
      if (created) await this.store.put(key, received.path, { move: true, synced: true, contentType: received.contentType });
    } finally {
      await rm(received.path, { force: true });
    }
    await saveUpload(db, {
      sha256: received.sha256,
      file_path: key,
      bytes: received.bytes,
      content_type: received.contentType,
      width: received.width,
      height: received.height,
      created_at: new Date().toISOString(),
    });
    return { ...received, path: key, created };
  }

  /**
   * Creates a task of `caller` for validated parameters and a stored reference, and queues it, within
   * the caller's limits (QuotaExceededError otherwise, nothing stored). With an idempotency key the
   * caller already used for the same parameters, returns that task instead.
   */
  async createTask(params: GenerateParams, upload: StoredUpload, caller: Caller): Promise<TaskView> {
    const { engine, workflowName } = this.options;
    const hash = paramsHash(params, upload.sha256);
    if (params.idempotencyKey) {
      const existing = await this.replay(params.idempotencyKey, hash, caller);
      if (existing) return existing;
    }
    // Where the webhook resolves now: a private or metadata address is refused before anything is stored.
    let webhookUrl: string | null = null;
    if (params.webhook) {
      try {
        webhookUrl = await checkWebhookTarget(params.webhook, this.options.webhookTargets ?? { allowHosts: [] });
      } catch (err) {
        if (err instanceof WebhookTargetError) throw new ValidationError('webhook', err.message);
        throw err;
      }
    }
    const id = newTaskId();
    const at = new Date().toISOString();
    // A random base seed is stored, so every image stays reproducible alone.
    const baseSeed = params.seed ?? randomInt(0, 2 ** 47);
    try {
      await engine.enqueue(
        {
          id,
          description: params.description,
          status: 'pending',
          progress: 0,
          result_path: null,
          error_message: null,
          created_at: at,
          updated_at: at,
          count: params.count,
          size: params.size,
          steps: params.steps,
          guidance: params.guidance,
          base_seed: baseSeed,
          workflow: workflowName,
          upload_sha256: upload.sha256,
          idempotency_key: params.idempotencyKey ?? null,
          params_hash: hash,
          owner_key_id: caller.keyId,
          webhook_url: webhookUrl,
          webhook_events: webhookUrl && params.webhookEvents ? storeEvents(params.webhookEvents) : null,
        },
        Array.from({ length: params.count }, (_, idx) => ({
          task_id: id,
          idx,
          seed: Math.min(baseSeed + idx, Number.MAX_SAFE_INTEGER),
          prompt_id: promptIdFor(id, idx),
          status: 'pending' as const,
        })),
        // Checked exactly in the enqueue transaction: a refusal (QuotaExceededError) stores nothing.
        caller.limits,
      );
    } catch (err) {
      // Two requests with one key raced: the unique index let one in; answer like a replay.
      if (params.idempotencyKey && /UNIQUE/i.test(String(err))) {
        const existing = await this.replay(params.idempotencyKey, hash, caller);
        if (existing) return existing;
      }
      throw err;
    }
    // Read before waking the engine: a new task is answered as `pending`, as the old service did.
    const view = (await this.getTask(id, caller))!;
    engine.wakeAll();
    return view;
  }

  /**
   * Refuses with QuotaExceededError when `caller` is over a limit now: called before an upload is
   * read, so a refused request costs no upload. createTask checks again, exactly, as it stores.
   */
  async checkLimits(caller: Caller, images = 1): Promise<void> {
    const { db, engine } = this.options;
    // `images`: the request's count when known (GraphQL); on REST the form is not read yet, so at least one must fit.
    await checkQuotas(db, { ownerKeyId: caller.keyId, limits: caller.limits, maxQueuedTasks: engine.maxQueuedTasks, images, now: new Date() });
  }

  /** Removes a stored upload that no task uses (a request failed after the upload was stored). */
  async discardUpload(upload: StoredUpload): Promise<void> {
    if (!upload.created) return;
    // The row goes only when no task refers to it (one may have been created with the same image meanwhile).
    const deleted = await deleteUnreferenced(this.options.db, [upload.sha256]);
    for (const row of deleted) await this.store.delete(row.file_path);
  }

  /** A task and its images; undefined when there is none or `caller` may not see it (never tell which). */
  async getTask(id: string, caller: Caller): Promise<TaskView | undefined> {
    const task = await this.visibleTask(id, caller);
    return task && this.viewOf(task);
  }

  /**
   * A task's row alone; undefined when there is none or `caller` may not see it (never tell which).
   * With {@link viewOf}, what getTask does, for a route that may answer before reading the images.
   */
  async visibleTask(id: string, caller: Caller): Promise<TaskRow | undefined> {
    const task = await findTask(this.options.db, id);
    return task && canSee(caller, task.owner_key_id) ? task : undefined;
  }

  /** The view of a task row already read (and checked with visibleTask): its images and queue position. */
  async viewOf(task: TaskRow): Promise<TaskView> {
    return {
      task,
      images: await imagesOfTask(this.options.db, task.id),
      queuePosition: await this.position(task),
      resultPaths: publicResultPaths(task.result_path, this.options.dataDir),
    };
  }

  /**
   * Tasks newest first; `after` is the id of the last task of the previous page. A cursor whose task
   * is gone (deleted by cleanup) is an error: starting over from the newest would make a pager loop.
   * A caller that does not see every task lists its own only.
   */
  async listTasks(options: { first: number; after?: string; status?: TaskStatus; caller: Caller }): Promise<{ tasks: TaskRow[]; hasNextPage: boolean }> {
    const { db } = this.options;
    // Refused before the lookup, and never echoed whole: the message quotes what it was given.
    if (options.after && options.after.length > MAX_CURSOR_LENGTH) {
      throw new ValidationError('after', `after must be a task id of at most ${MAX_CURSOR_LENGTH} characters (got ${options.after.length})`);
    }
    const found = options.after ? await findTask(db, options.after) : undefined;
    const cursor = found && canSee(options.caller, found.owner_key_id) ? found : undefined;
    if (options.after && !cursor) throw new ValidationError('after', `after: no task ${options.after} (it may have been deleted); start again without a cursor`);
    const rows = await listTasks(db, {
      limit: options.first + 1,
      ...(cursor ? { after: { createdAt: cursor.created_at, id: cursor.id } } : {}),
      ...(options.status ? { status: options.status } : {}),
      ...(options.caller.seesAll ? {} : { owner: options.caller.keyId ?? '' }),
    });
    return { tasks: rows.slice(0, options.first), hasNextPage: rows.length > options.first };
  }

  /** Images of many tasks at once, grouped by task id (for DataLoader). */
  async imagesByTask(taskIds: readonly string[]): Promise<Map<string, ImageRow[]>> {
    const byTask = new Map<string, ImageRow[]>(taskIds.map((id) => [id, []]));
    for (const image of await imagesOfTasks(this.options.db, taskIds)) byTask.get(image.task_id)?.push(image);
    return byTask;
  }

  /** Queue positions (1 = next to start) of the pending tasks among `ids`, in one query (for DataLoader). */
  async queuePositions(ids: readonly string[]): Promise<Map<string, number>> {
    const wanted = new Set(ids);
    const positions = new Map<string, number>();
    for (const [i, id] of (await pendingTaskIds(this.options.db, this.options.engine.queuePolicy)).entries()) if (wanted.has(id)) positions.set(id, i + 1);
    return positions;
  }

  /** Cancels a task; undefined when there is no such task `caller` sees. A finished task is returned unchanged. */
  async cancelTask(id: string, caller: Caller): Promise<TaskView | undefined> {
    const row = await this.visibleTask(id, caller);
    if (!row) return undefined;
    if (isFinal(row.status)) return this.viewOf(row);
    await this.options.engine.cancel(id);
    return this.getTask(id, caller);
  }

  /**
   * A finished image of a task with its key in `store`; undefined when there is none (yet) or `caller`
   * may not see the task. (A request with a valid signed URL may see that one image: pass OPEN_CALLER.)
   */
  async imageFile(taskId: string, index: number, caller: Caller): Promise<{ key: string; image: ImageRow } | undefined> {
    if (!caller.seesAll && !(await this.visibleTask(taskId, caller))) return undefined;
    const image = await findImage(this.options.db, taskId, index);
    if (!image || image.status !== 'completed' || !image.file_path) return undefined;
    return { key: image.file_path, image };
  }

  /** Counts per status (for /health). */
  counts(): Promise<Record<TaskStatus, number>> {
    return countByStatus(this.options.db);
  }

  /** The current state of a task as a frame: what a new subscriber is sent first. Undefined: none `caller` sees. */
  async snapshot(id: string, caller: Caller): Promise<ProgressFrame | undefined> {
    const task = await this.visibleTask(id, caller);
    if (!task) return undefined;
    // The queue moves without this task's frames changing: compute its position now.
    return { ...storedFrame(task), queuePosition: await this.position(task) };
  }

  /**
   * The task's progress: first its current state, then every later frame in `seq` order, ending
   * after the final one (a TaskWatch: iterate it, or `listen` to it). Undefined for an unknown task
   * or one `caller` may not see. Listens before reading the snapshot, so no frame published in
   * between is lost; every watch of a task in this process shares one bus subscription (the hub).
   */
  async watch(id: string, caller: Caller): Promise<TaskWatch | undefined> {
    const watch = new TaskWatch(id, this.hub);
    let first: ProgressFrame | undefined;
    try {
      await this.hub.add(id, watch); // a broker-backed bus listens only after a round trip
      first = await this.snapshot(id, caller);
    } catch (err) {
      watch.close();
      throw err;
    }
    if (!first) {
      watch.close();
      return undefined;
    }
    watch.start(first);
    return watch;
  }

  /** Watches open now in this process, over every task (they share one bus subscription per task). */
  watchers(): number {
    return this.hub.watchers;
  }

  /** 1 = next to start, as in progress frames; null when not pending. */
  private async position(task: TaskRow): Promise<number | null> {
    const ahead = await queuePosition(this.options.db, task, this.options.engine.queuePolicy);
    return ahead === undefined ? null : ahead + 1;
  }

  private async replay(key: string, hash: string, caller: Caller): Promise<TaskView | undefined> {
    const existing = await findTaskByIdempotencyKey(this.options.db, key, caller.keyId);
    if (!existing) return undefined;
    if (existing.params_hash !== hash) throw new IdempotencyConflictError(key);
    return this.getTask(existing.id, caller);
  }
}
