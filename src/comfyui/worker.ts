/**
 * One ComfyUI server, running prompts to a final outcome without ever losing one.
 *
 * A prompt is submitted under the socket's current clientId and followed through its WebSocket
 * messages (filtered by prompt_id). "Done" is `executing {node: null}` for it, after which
 * `GET /history/{id}` gives the verdict (docs/comfyui-protocol.md §8.1): success with the output node's images,
 * `execution_error` → `ComfyExecutionError`, `execution_interrupted` → `ComfyInterruptedError`.
 * The common case needs no history read: `execution_success` (success only, sent before the
 * history is written) after an `executed` of the output node naming its images is the result.
 *
 * Messages can be lost (a dropped socket, a restarted server, a prompt submitted before a
 * reconnect), so the WebSocket is only the fast path. The worker **reconciles** through
 * `/history/{id}` and `/queue`:
 * - after every reconnect, for every prompt in flight;
 * - every `pollMs` for prompts that cannot get messages (submitted under an earlier clientId,
 *   attached with `attach()`, or while the socket is down);
 * - when a prompt with a live socket has been silent for `silenceMs`.
 * Reconciling finds each prompt finished (→ its result), still queued or running (→ keep
 * waiting), or gone (→ `ComfyPromptVanishedError`, after a second history read so that a prompt
 * finishing between the two calls is not mistaken for a lost one).
 *
 * Every wait is bounded, by two deadlines per prompt: `queueTimeoutMs` from submission (or
 * `attach()`) to its start (`ComfyQueueTimeoutError`; the prompt is then deleted from the queue),
 * and `timeoutMs` from its start to its end (`ComfyRunTimeoutError`), so that time spent queued
 * behind other prompts does not eat into a prompt's own run. The start is the first sign of it
 * running: `execution_start`/`execution_cached`/`executing` on the socket, or the prompt found in
 * `queue_running` by a poll or reconcile (then up to `pollMs`, or `silenceMs` for a silent live
 * prompt, after the real start). Both timers are cleared when the prompt settles, and `stop()`
 * rejects whatever is still pending.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ComfyBadReplyError,
  ComfyError,
  ComfyExecutionError,
  ComfyInterruptedError,
  ComfyPromptVanishedError,
  ComfyQueueTimeoutError,
  ComfyRunTimeoutError,
  ComfyWorkerStoppedError,
} from './errors.js';
import type {
  AttachOptions,
  BackendHealth,
  ComfyBackend,
  Download,
  LivenessEvent,
  PromptEvent,
  PromptResult,
  RunOptions,
} from './backend.js';
import { ComfyHttpClient } from './http-client.js';
import type { ApiPrompt, FileRef, HistoryEntry, ObjectInfo, Queue, Uploaded, WsMessage } from './protocol.js';
import { ComfySocket, type SocketOpenEvent, type SocketPreviewEvent } from './socket.js';
import { isStaleConnection, mayHaveArrived } from './transport-failure.js';

// The types of the boundary, for callers that import them from here.
export type { AttachOptions, PromptEvent, PromptResult, RunOptions } from './backend.js';

export type ReconcileState = { state: 'finished'; entry: HistoryEntry } | { state: 'running' | 'queued' } | { state: 'vanished' };

export interface ComfyWorkerOptions {
  /**
   * Deadline of each HTTP call, in milliseconds.
   * @default 30_000
   */
  timeoutMs?: number;
  /**
   * Deadline of one image download (`download`), in milliseconds.
   * @default 120_000
   */
  downloadTimeoutMs?: number;
  /**
   * A prompt that could receive messages but has received none for this long is reconciled
   * through `/history` and `/queue` (and again after each further `silenceMs`).
   * @default 20_000
   */
  silenceMs?: number;
  /**
   * Poll interval, in milliseconds, for prompts whose messages cannot reach us.
   * @default 1_000
   */
  pollMs?: number;
  /**
   * Ask for previews that carry their prompt id (type 4).
   * @default true
   */
  previewMetadata?: boolean;
  /**
   * Limit of a prompt's own run (from its start) when the call gives none, in milliseconds.
   * @default 900_000 (15 minutes)
   */
  runTimeoutMs?: number;
  /**
   * Limit of a prompt's wait in ComfyUI's queue (from submission, or from `attach()`, to its
   * start) when the call gives none, in milliseconds. Generous on purpose: a queue shared with
   * other clients may hold many long prompts; it ends a wait for a prompt that never starts.
   * @default 3_600_000 (1 hour)
   */
  queueTimeoutMs?: number;
  /**
   * Reconnect tuning of the WebSocket (see `ComfySocketOptions`).
   * @default the ComfySocket defaults
   */
  socket?: { reconnectInitialMs?: number; reconnectMaxMs?: number; pingIntervalMs?: number; connectTimeoutMs?: number };
}

/** How long `run()` waits for a reconnecting socket before submitting anyway (then followed by polling). */
const SOCKET_WAIT_MS = 5_000;
/** Retries of the history read right after `executing null`, which should never be empty. */
const FINISH_RETRY_DELAYS_MS = [100, 250, 500, 1_000];
/** Debounce of queue-position refreshes triggered by `status` broadcasts. */
const QUEUE_REFRESH_DELAY_MS = 100;

interface Tracked {
  promptId: string;
  outputNode: string;
  /** The clientId it was submitted under; `undefined` before submission and for attached prompts. */
  clientId: string | undefined;
  listeners: Array<(event: PromptEvent) => void>;
  /** `submitting`: POST /prompt not answered yet; `waiting`: accepted, followed by messages or polls; `finishing`: reading the verdict after `executing null`. */
  phase: 'submitting' | 'waiting' | 'finishing';
  started: boolean;
  /** Last `queued` position reported; `null` = `queued` not reported yet. */
  position: number | undefined | null;
  /** Images seen in `executed` messages, by node: the result on `execution_success`, and the fallback when history has none. */
  executed: Map<string, FileRef[]>;
  /** Nodes `execution_cached` named: whether the result was served from ComfyUI's cache. */
  cachedNodes: Set<string>;
  /** Last message or reconcile, for the silence check. */
  lastActivity: number;
  /** A reconcile is in flight for it. */
  checking: boolean;
  cancelRequested: boolean;
  /** Limit of its run, started by `markStarted`. */
  timeoutMs: number;
  /** Bounds the wait for its start; cleared when it starts. */
  queueDeadline: NodeJS.Timeout | undefined;
  /** Bounds its run; set when it starts. */
  runDeadline: NodeJS.Timeout | undefined;
  promise: Promise<PromptResult>;
  resolve: (result: PromptResult) => void;
  reject: (err: Error) => void;
}

/** The `ComfyBackend` of a real ComfyUI server, over its HTTP API and WebSocket. */
export class ComfyWorker implements ComfyBackend {
  /** The server's base URL, normalized (no trailing slash). */
  readonly url: string;
  private readonly http: ComfyHttpClient;
  private readonly socket: ComfySocket;
  /** Liveness events for `on()`, fed by the socket. */
  private readonly liveness = new EventEmitter<Record<LivenessEvent, []>>();

  private readonly silenceMs: number;
  private readonly pollMs: number;
  private readonly runTimeoutMs: number;
  private readonly queueTimeoutMs: number;
  private readonly tracked = new Map<string, Tracked>();
  /** Aborted by `stop()`: cancels the sleeps of finishing prompts. */
  private readonly lifetime = new AbortController();
  private tick: NodeJS.Timeout | undefined;
  private ticking = false;
  private queueRefresh: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(url: string, options: ComfyWorkerOptions = {}) {
    this.http = new ComfyHttpClient(url, {
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.downloadTimeoutMs !== undefined ? { downloadTimeoutMs: options.downloadTimeoutMs } : {}),
    });
    this.url = this.http.baseUrl;
    this.socket = new ComfySocket(this.url, { ...options.socket, previewMetadata: options.previewMetadata ?? true });
    this.silenceMs = options.silenceMs ?? 20_000;
    this.pollMs = options.pollMs ?? 1_000;
    this.runTimeoutMs = options.runTimeoutMs ?? 900_000;
    this.queueTimeoutMs = options.queueTimeoutMs ?? 3_600_000;
    this.socket.on('message', (msg) => this.onMessage(msg));
    this.socket.on('preview', (preview) => this.onPreview(preview));
    this.socket.on('open', (event) => this.onOpen(event));
    // After onOpen, so that listeners see prompts already being reconciled.
    this.socket.on('open', (event) => this.liveness.emit(event.reconnected ? 'reconnected' : 'connected'));
    this.socket.on('close', () => this.liveness.emit('disconnected'));
  }

  /** Listens to a liveness event (`connected`, `disconnected`, `reconnected`); returns the function that stops listening. */
  on(event: LivenessEvent, listener: () => void): () => void {
    this.liveness.on(event, listener);
    return () => this.liveness.off(event, listener);
  }

  /** True while the WebSocket is connected (prompts then get live events). */
  get isConnected(): boolean {
    return this.socket.isOpen;
  }

  /**
   * Opens the WebSocket. Rejects with `ComfyUnreachableError` (or `ComfyTimeoutError`) if the first
   * attempt fails; the socket keeps retrying in the background and the worker stays usable.
   */
  async start(): Promise<void> {
    if (this.stopped) throw new ComfyWorkerStoppedError(this.url);
    this.startTicking();
    await this.socket.connect();
  }

  /**
   * Submits a prompt and waits for its outcome: resolves with the output node's images, or rejects
   * with `ComfyValidationError`, `ComfyExecutionError`, `ComfyInterruptedError` (cancelled),
   * `ComfyPromptVanishedError` (ComfyUI lost it: resubmit with the same id), `ComfyRunTimeoutError`
   * (ran longer than `timeoutMs`; it may still run: the caller decides whether to cancel),
   * `ComfyQueueTimeoutError` (did not start within `queueTimeoutMs`; see its `removed`),
   * `ComfyUnreachableError` (fails fast when the server is down) or `ComfyWorkerStoppedError`.
   *
   * Use a fresh UUID as `promptId`: it is the key for everything, including `attach()` after a crash.
   */
  run(promptId: string, prompt: ApiPrompt, options: RunOptions): Promise<PromptResult> {
    if (this.stopped) return Promise.reject(new ComfyWorkerStoppedError(this.url, promptId));
    if (this.tracked.has(promptId)) return Promise.reject(new Error(`prompt ${promptId} is already in flight on ${this.url}`));
    const t = this.track(promptId, options);
    void this.submit(t, prompt, options.front);
    return t.promise;
  }

  /**
   * Follows a prompt submitted earlier, by us before a crash or by another client: a finished
   * prompt resolves (or rejects) at once from its history, a queued or running one is polled
   * every `pollMs` (no live events but `queued`/`started`), a vanished one rejects with
   * `ComfyPromptVanishedError`. Rejects with `ComfyUnreachableError` if the server cannot be
   * asked. Its queue deadline counts from this call; one found running gets its run deadline from
   * then. A prompt already in flight here returns the same promise (with `onEvent` added).
   */
  attach(promptId: string, options: AttachOptions): Promise<PromptResult> {
    if (this.stopped) return Promise.reject(new ComfyWorkerStoppedError(this.url, promptId));
    const existing = this.tracked.get(promptId);
    if (existing) {
      if (options.onEvent) existing.listeners.push(options.onEvent);
      return existing.promise;
    }
    const t = this.track(promptId, options);
    t.phase = 'waiting';
    void this.reconcileTracked([t], { failFast: true });
    return t.promise;
  }

  /**
   * Where a prompt is now, from `/history/{id}` and `/queue`. "vanished" is only concluded after a
   * second history read, so that a prompt finishing between the two calls is found.
   */
  async reconcile(promptId: string): Promise<ReconcileState> {
    const entry = await this.http.getHistory(promptId);
    if (entry) return { state: 'finished', entry };
    const state = queueState(await this.http.getQueue(), promptId);
    if (state) return { state };
    const late = await this.http.getHistory(promptId);
    return late ? { state: 'finished', entry: late } : { state: 'vanished' };
  }

  /**
   * Cancels a prompt: a pending one is deleted from the queue, a running one interrupted (targeted,
   * so other prompts are safe). Its `run()` then rejects with `ComfyInterruptedError`. A prompt
   * that is about to finish may still succeed. Works for prompts this worker does not track, too.
   */
  async cancel(promptId: string): Promise<void> {
    const t = this.current(promptId);
    if (t) {
      t.cancelRequested = true;
      if (t.phase === 'submitting') return; // submit() cancels it as soon as ComfyUI has accepted it
    }
    const queue = await this.http.getQueue();
    const state = queueState(queue, promptId);
    if (state === 'running') {
      await this.http.interrupt(promptId);
      return;
    }
    if (state === 'queued') {
      await this.http.deleteQueued([promptId]);
      const after = queueState(await this.http.getQueue(), promptId);
      // It may have started between the two calls.
      if (after === 'running') await this.http.interrupt(promptId);
      if (after !== undefined) return;
    }
    // Deleted, or not in the queue at all. A deleted prompt leaves no history and sends no
    // message (docs/comfyui-protocol.md §2.2), so settle it here, unless it actually finished meanwhile.
    const entry = await this.http.getHistory(promptId);
    const still = this.current(promptId);
    if (!still) return;
    if (entry) this.settleFromEntry(still, entry);
    else this.settle(still, new ComfyInterruptedError(this.url, promptId));
  }

  /**
   * Stops waiting for a prompt without touching it on ComfyUI: its `run()`/`attach()` rejects with
   * `ComfyWorkerStoppedError` carrying `reason`. For a caller that moves the work elsewhere (the
   * server looks down). Returns false if the prompt was not in flight here.
   */
  release(promptId: string, reason = 'released by the caller'): boolean {
    const t = this.current(promptId);
    if (!t) return false;
    this.settle(t, new ComfyWorkerStoppedError(this.url, promptId, reason));
    return true;
  }

  /** The prompt ids this worker is waiting for. */
  inFlight(): string[] {
    return [...this.tracked.keys()];
  }

  /** `POST /upload/image`: use the returned `name`, ComfyUI renames or deduplicates. @default options.overwrite false */
  uploadImage(data: Buffer, filename: string, options: { overwrite?: boolean } = {}): Promise<Uploaded> {
    return this.http.uploadImage(data, filename, options);
  }

  /** `GET /view` to `destPath`, whole or not at all (within the worker's `downloadTimeoutMs`). @default options.maxBytes unlimited, options.durable true (synced) */
  download(file: FileRef, destPath: string, options: { maxBytes?: number; durable?: boolean } = {}): Promise<Download> {
    return this.http.downloadView(file, destPath, options);
  }

  /** `GET /queue`: running and pending prompts of all clients. */
  queue(): Promise<Queue> {
    return this.http.getQueue();
  }

  /** Removes these prompts if they are pending; running and unknown ids are ignored. */
  deleteQueued(promptIds: string[]): Promise<void> {
    return this.http.deleteQueued(promptIds);
  }

  /** Interrupts this prompt if it runs now; never whatever else runs (another client's prompt). */
  interrupt(promptId: string): Promise<void> {
    return this.http.interrupt(promptId);
  }

  /** `GET /system_stats` and `GET /queue`, side by side. */
  async health(): Promise<BackendHealth> {
    const [stats, queue] = await Promise.all([this.http.systemStats(), this.http.getQueue()]);
    return { stats, queue };
  }

  /** `GET /object_info`: every node class. */
  objectInfo(): Promise<ObjectInfo> {
    return this.http.objectInfo();
  }

  /**
   * Stops the worker: every pending `run`/`attach` rejects with `ComfyWorkerStoppedError` (the
   * prompts themselves keep running on ComfyUI and can be attached again), the socket and the
   * HTTP connections are closed.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.tick);
    clearTimeout(this.queueRefresh);
    this.lifetime.abort();
    for (const t of [...this.tracked.values()]) this.settle(t, new ComfyWorkerStoppedError(this.url, t.promptId));
    await this.socket.close();
    await this.http.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Submission
  // ---------------------------------------------------------------------------------------------

  private startTicking(): void {
    if (this.tick || this.stopped) return;
    this.tick = setInterval(() => void this.onTick(), this.pollMs);
    this.tick.unref(); // the deadlines of pending prompts keep the process alive, not the poll
  }

  private track(promptId: string, options: AttachOptions): Tracked {
    this.startTicking();
    const queueTimeoutMs = options.queueTimeoutMs ?? this.queueTimeoutMs;
    let resolve!: (result: PromptResult) => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<PromptResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // The caller may drop the promise (e.g. after a timeout it handled elsewhere): never an unhandled rejection.
    promise.catch(() => undefined);
    const t: Tracked = {
      promptId,
      outputNode: options.outputNode,
      clientId: undefined,
      listeners: options.onEvent ? [options.onEvent] : [],
      phase: 'submitting',
      started: false,
      position: null,
      executed: new Map(),
      cachedNodes: new Set(),
      lastActivity: Date.now(),
      checking: false,
      cancelRequested: false,
      timeoutMs: options.timeoutMs ?? this.runTimeoutMs,
      queueDeadline: setTimeout(() => void this.onQueueTimeout(t, queueTimeoutMs), queueTimeoutMs),
      runDeadline: undefined,
      promise,
      resolve,
      reject,
    };
    this.tracked.set(promptId, t);
    return t;
  }

  private async submit(t: Tracked, prompt: ApiPrompt, front: boolean | undefined): Promise<void> {
    if (!this.socket.isOpen) {
      // Do not hang for the socket when the server is down: a cheap call fails fast.
      try {
        await this.http.systemStats();
      } catch (err) {
        this.settle(t, this.asError(err));
        return;
      }
      // The server is up, so the socket should be back soon; without it the prompt is polled.
      this.socket.connect().catch(() => undefined); // starts the socket if start() was never called
      await this.socket.waitUntilOpen(SOCKET_WAIT_MS);
      if (!this.isCurrent(t)) return;
    }
    if (t.cancelRequested) {
      this.settle(t, new ComfyInterruptedError(this.url, t.promptId)); // cancelled before it was sent
      return;
    }
    t.clientId = this.socket.clientId;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.http.queuePrompt({ prompt, promptId: t.promptId, clientId: t.clientId, ...(front !== undefined ? { front } : {}) });
        break;
      } catch (err) {
        if (!this.isCurrent(t)) return;
        // A timeout, or a connection that broke after sending: ComfyUI may have queued it.
        if (!mayHaveArrived(err)) {
          this.settle(t, this.asError(err));
          return;
        }
        // The request may have reached ComfyUI before the connection failed: look before deciding.
        const state = await this.reconcile(t.promptId).catch(() => undefined);
        if (!this.isCurrent(t)) return;
        if (state?.state === 'finished') {
          this.settleFromEntry(t, state.entry);
          return;
        }
        if (state?.state === 'queued' || state?.state === 'running') break; // it did arrive
        // Not there (or we cannot tell). A kept-alive connection that the server had closed is
        // safe to retry once: the prompt provably never arrived.
        if (state?.state === 'vanished' && attempt === 1 && isStaleConnection(err)) continue;
        this.settle(t, this.asError(err));
        return;
      }
    }
    if (!this.isCurrent(t)) return; // timed out or stopped meanwhile; the prompt runs on
    if (t.phase === 'submitting') t.phase = 'waiting';
    t.lastActivity = Date.now();
    if (t.cancelRequested) {
      this.cancel(t.promptId).catch(() => this.markSilent(t)); // a failed cancel: reconcile soon
      return;
    }
    if (!t.started) this.scheduleQueueRefresh(0);
  }

  // ---------------------------------------------------------------------------------------------
  // Live messages
  // ---------------------------------------------------------------------------------------------

  private onMessage(msg: WsMessage): void {
    if (msg.type === 'status') {
      // The queue changed: refresh the positions of our waiting prompts.
      if ([...this.tracked.values()].some((t) => !t.started && t.phase === 'waiting')) this.scheduleQueueRefresh(QUEUE_REFRESH_DELAY_MS);
      return;
    }
    if (msg.type === 'feature_flags') return;
    const promptId = msg.data.prompt_id;
    if (!promptId) return; // the reconnect `executing` replay and unowned progress carry none
    const t = this.current(promptId);
    if (!t) return;
    t.lastActivity = Date.now();
    switch (msg.type) {
      case 'execution_start':
        this.markStarted(t);
        break;
      case 'execution_cached':
        this.markStarted(t);
        for (const node of msg.data.nodes) t.cachedNodes.add(node);
        if (msg.data.nodes.length > 0) this.emit(t, { type: 'cached', nodes: msg.data.nodes });
        break;
      case 'executing':
        if (msg.data.node === null) {
          void this.finish(t);
        } else {
          this.markStarted(t);
          this.emit(t, { type: 'executing', node: msg.data.display_node ?? msg.data.node });
        }
        break;
      case 'progress':
        // A step means it runs: a prompt attached while running may send one before the reconcile that
        // would have said so answers, and `started` must come first (its run deadline, the image's state).
        this.markStarted(t);
        this.emit(t, { type: 'progress', value: msg.data.value, max: msg.data.max, node: msg.data.node ?? null });
        break;
      case 'executed': {
        const node = msg.data.display_node ?? msg.data.node;
        const images = msg.data.output?.images ?? [];
        t.executed.set(node, images);
        this.emit(t, { type: 'executed', node, images });
        break;
      }
      case 'execution_success': {
        // Success, and the output node's images were named: the result, a history read (one round
        // trip, ~25 ms of a result's way to the client over a 20 ms link) earlier. Without them
        // (an output node that sent no `executed`) the verdict waits for `executing null` and history.
        const images = t.executed.get(t.outputNode);
        if (images?.length) this.settle(t, { promptId: t.promptId, images, cached: t.cachedNodes.has(t.outputNode) });
        break;
      }
      default:
        // progress_state, execution_error/interrupted: the verdict comes from history.
        break;
    }
  }

  private onPreview(preview: SocketPreviewEvent): void {
    const t = preview.promptId ? this.current(preview.promptId) : undefined;
    if (!t) return;
    t.lastActivity = Date.now();
    this.emit(t, { type: 'preview', mime: preview.mime, image: preview.image });
  }

  private onOpen(event: SocketOpenEvent): void {
    // Everything in flight was submitted under an earlier clientId: nothing was replayed to us.
    if (event.reconnected && this.tracked.size > 0) void this.reconcileTracked([...this.tracked.values()], { failFast: false });
  }

  /** `executing null` arrived: read the verdict from history. */
  private async finish(t: Tracked): Promise<void> {
    if (t.phase === 'finishing') return;
    t.phase = 'finishing';
    for (const delay of [0, ...FINISH_RETRY_DELAYS_MS]) {
      if (delay > 0 && !(await this.pause(delay))) return;
      if (!this.isCurrent(t)) return;
      try {
        const entry = await this.http.getHistory(t.promptId);
        if (!this.isCurrent(t)) return;
        if (entry) {
          this.settleFromEntry(t, entry);
          return;
        }
      } catch {
        // Retried below; the deadline bounds it all.
      }
    }
    // Still no history: let the reconcile decide (finished late, somehow still queued, or vanished).
    if (!this.isCurrent(t)) return;
    t.phase = 'waiting';
    await this.reconcileTracked([t], { failFast: false });
  }

  // ---------------------------------------------------------------------------------------------
  // Reconciliation
  // ---------------------------------------------------------------------------------------------

  private async onTick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    const now = Date.now();
    const due = [...this.tracked.values()].filter(
      (t) => t.phase === 'waiting' && !t.checking && (!this.isLive(t) || now - t.lastActivity >= this.silenceMs),
    );
    if (due.length === 0) return;
    this.ticking = true;
    try {
      await this.reconcileTracked(due, { failFast: false });
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Reconciles several prompts with one queue read: history first (finished → settle), then the
   * queue (queued/running → keep waiting), then history once more (finished late → settle;
   * still nothing → vanished). HTTP failures leave the prompts waiting for the next round, unless
   * `failFast` (then they reject) or `vanished` (the error to use instead of "vanished").
   */
  private async reconcileTracked(list: Tracked[], opts: { failFast: boolean; vanished?: Error }): Promise<void> {
    // Prompts still being submitted or finishing are not judged here: they would look vanished.
    const targets = list.filter((t) => this.isCurrent(t) && !t.checking && t.phase === 'waiting');
    for (const t of targets) t.checking = true;
    try {
      const pending = await this.settleFinished(targets, opts.failFast);
      if (pending.length === 0) return;
      let queue: Queue;
      try {
        queue = await this.http.getQueue();
      } catch (err) {
        this.onReconcileFailure(pending, err, opts);
        return;
      }
      const missing: Tracked[] = [];
      for (const t of pending) {
        if (!this.isCurrent(t)) continue;
        t.lastActivity = Date.now();
        if (queueState(queue, t.promptId) === undefined) missing.push(t);
      }
      this.applyQueue(queue);
      if (missing.length === 0) return;
      const gone = await this.settleFinished(missing, opts.failFast);
      for (const t of gone) {
        if (!this.isCurrent(t)) continue;
        if (opts.vanished) this.settle(t, opts.vanished);
        else if (t.cancelRequested) this.settle(t, new ComfyInterruptedError(this.url, t.promptId));
        else this.settle(t, new ComfyPromptVanishedError(this.url, t.promptId));
      }
    } finally {
      for (const t of targets) t.checking = false;
    }
  }

  /** Reads the history of each prompt; settles the finished ones and returns the others. */
  private async settleFinished(list: Tracked[], failFast: boolean): Promise<Tracked[]> {
    const results = await Promise.allSettled(list.map((t) => this.http.getHistory(t.promptId)));
    const unfinished: Tracked[] = [];
    results.forEach((result, i) => {
      const t = list[i];
      if (!t || !this.isCurrent(t)) return;
      if (result.status === 'rejected') {
        if (failFast) this.settle(t, this.asError(result.reason));
        return; // not known to be unfinished: not judged in this round
      }
      if (result.value) this.settleFromEntry(t, result.value);
      else unfinished.push(t);
    });
    return unfinished;
  }

  private onReconcileFailure(list: Tracked[], err: unknown, opts: { failFast: boolean; vanished?: Error }): void {
    for (const t of list) {
      if (!this.isCurrent(t)) continue;
      if (opts.failFast) this.settle(t, this.asError(err));
      else if (opts.vanished) this.settle(t, opts.vanished);
    }
  }

  /** Queue positions and starts, for prompts waiting in it. */
  private applyQueue(queue: Queue): void {
    const order = [...queue.queue_running, ...[...queue.queue_pending].sort((a, b) => a[0] - b[0])].map((item) => item[1]);
    const running = new Set(queue.queue_running.map((item) => item[1]));
    for (const t of this.tracked.values()) {
      if (t.phase !== 'waiting') continue;
      if (running.has(t.promptId)) {
        this.markStarted(t);
        continue;
      }
      const index = order.indexOf(t.promptId);
      if (index < 0 || t.started || t.position === index) continue;
      t.position = index;
      this.emit(t, { type: 'queued', position: index });
    }
  }

  private scheduleQueueRefresh(delayMs: number): void {
    if (this.queueRefresh || this.stopped) return;
    this.queueRefresh = setTimeout(() => {
      this.queueRefresh = undefined;
      this.http.getQueue().then(
        (queue) => this.applyQueue(queue),
        () => {
          // Positions are a nicety: report the prompts as queued without one.
          for (const t of this.tracked.values()) {
            if (t.phase === 'waiting' && !t.started && t.position === null) {
              t.position = undefined;
              this.emit(t, { type: 'queued' });
            }
          }
        },
      );
    }, delayMs);
  }

  // ---------------------------------------------------------------------------------------------
  // Outcomes
  // ---------------------------------------------------------------------------------------------

  /** Turns a history entry into the prompt's result or error (docs/comfyui-protocol.md §2.5, §8.8). */
  private settleFromEntry(t: Tracked, entry: HistoryEntry): void {
    const status = entry.status;
    const messages = status?.messages ?? [];
    if (status === undefined || status.status_str === 'success') {
      const images = entry.outputs[t.outputNode]?.images ?? t.executed.get(t.outputNode) ?? [];
      if (images.length === 0) {
        const problem = status
          ? `prompt ${t.promptId} succeeded but output node ${t.outputNode} has no images`
          : `history of prompt ${t.promptId} has no status and no images for node ${t.outputNode}`;
        this.settle(t, new ComfyBadReplyError(this.url, `GET /history/${t.promptId}`, problem));
        return;
      }
      const cached = messages.some(([type, data]) => type === 'execution_cached' && asStrings(data['nodes']).includes(t.outputNode));
      this.settle(t, { promptId: t.promptId, images, cached });
      return;
    }
    // An error: told apart from an interrupt by its last execution_* message.
    const verdict = [...messages].reverse().find(([type]) => type === 'execution_error' || type === 'execution_interrupted');
    const data = verdict?.[1] ?? {};
    const str = (key: string) => (typeof data[key] === 'string' ? (data[key] as string) : undefined);
    if (verdict?.[0] === 'execution_interrupted') {
      this.settle(t, new ComfyInterruptedError(this.url, t.promptId, str('node_id'), str('node_type')));
    } else if (verdict?.[0] === 'execution_error') {
      this.settle(
        t,
        new ComfyExecutionError(
          this.url,
          t.promptId,
          str('node_id') ?? '?',
          str('node_type') ?? '?',
          str('exception_type') ?? 'Exception',
          str('exception_message') ?? '',
          asStrings(data['traceback']),
        ),
      );
    } else {
      const problem = `prompt ${t.promptId} ended with status "${status.status_str}" but records no execution_error`;
      this.settle(t, new ComfyBadReplyError(this.url, `GET /history/${t.promptId}`, problem));
    }
  }

  private settle(t: Tracked, outcome: PromptResult | Error): void {
    if (!this.isCurrent(t)) return;
    this.tracked.delete(t.promptId);
    clearTimeout(t.queueDeadline);
    clearTimeout(t.runDeadline);
    if (outcome instanceof Error) t.reject(outcome);
    else t.resolve(outcome);
  }

  /** The prompt runs: its wait in the queue is over, the limit of its run starts now. */
  private markStarted(t: Tracked): void {
    if (t.started || !this.isCurrent(t)) return; // never a timer for a settled prompt
    t.started = true;
    clearTimeout(t.queueDeadline);
    t.queueDeadline = undefined;
    t.runDeadline = setTimeout(() => this.settle(t, new ComfyRunTimeoutError(this.url, t.promptId, t.timeoutMs)), t.timeoutMs);
    this.emit(t, { type: 'started' });
  }

  /**
   * The prompt did not start within `waitedMs`. Look first (it may have started or finished
   * unnoticed, e.g. with its messages lost); if it still waits, delete it from the queue, so that
   * the caller may submit it elsewhere without it running twice.
   */
  private async onQueueTimeout(t: Tracked, waitedMs: number): Promise<void> {
    t.queueDeadline = undefined;
    if (!this.isCurrent(t) || t.started) return;
    const giveUp = (removed: boolean) => this.settle(t, new ComfyQueueTimeoutError(this.url, t.promptId, waitedMs, removed));
    // Still being submitted: the POST may yet queue it, so it cannot be said to be removed.
    if (t.phase === 'submitting') return giveUp(false);
    let state: ReconcileState;
    let deleted = false;
    try {
      state = await this.reconcile(t.promptId);
      if (state.state === 'queued') {
        await this.http.deleteQueued([t.promptId]);
        deleted = true;
        state = await this.reconcile(t.promptId); // it may have started between the two calls
      }
    } catch {
      if (this.isCurrent(t) && !t.started) giveUp(false); // the server does not answer: it may still run
      return;
    }
    if (!this.isCurrent(t) || t.started) return;
    if (state.state === 'finished') this.settleFromEntry(t, state.entry);
    else if (state.state === 'running') this.markStarted(t);
    else if (state.state === 'queued') giveUp(false);
    else if (deleted) giveUp(true);
    else this.settle(t, new ComfyPromptVanishedError(this.url, t.promptId)); // lost before we looked
  }

  /** Forces a reconcile at the next tick. */
  private markSilent(t: Tracked): void {
    t.lastActivity = 0;
  }

  private emit(t: Tracked, event: PromptEvent): void {
    for (const listener of t.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not break the bookkeeping of the prompt.
      }
    }
  }

  // ---------------------------------------------------------------------------------------------

  private current(promptId: string): Tracked | undefined {
    return this.tracked.get(promptId);
  }

  private isCurrent(t: Tracked): boolean {
    return this.tracked.get(t.promptId) === t;
  }

  /** The prompt can receive messages: submitted under the clientId of the connection open now. */
  private isLive(t: Tracked): boolean {
    return this.socket.isOpen && t.clientId !== undefined && t.clientId === this.socket.clientId;
  }

  private asError(err: unknown): Error {
    return err instanceof Error ? err : new ComfyError('UNREACHABLE', this.url, `ComfyUI at ${this.url}: ${String(err)}`);
  }

  /** Sleeps unless the worker stops; resolves false if it did. */
  private async pause(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.lifetime.signal });
      return true;
    } catch {
      return false;
    }
  }
}

function queueState(queue: Queue, promptId: string): 'running' | 'queued' | undefined {
  if (queue.queue_running.some((item) => item[1] === promptId)) return 'running';
  if (queue.queue_pending.some((item) => item[1] === promptId)) return 'queued';
  return undefined;
}

function asStrings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
