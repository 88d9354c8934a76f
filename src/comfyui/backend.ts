/**
 * The boundary between the task engine (with its worker pool) and one ComfyUI server: what they may
 * ask of a server and what it tells them, without its transport. `ComfyWorker` implements it over
 * ComfyUI's HTTP API and WebSocket; the tests also run the pool against an in-memory one
 * (test/helpers/fake-backend.ts). Failures are the typed errors of `errors.ts`.
 */
import type { ApiPrompt, FileRef, ObjectInfo, Queue, SystemStats, Uploaded } from './protocol.js';

/** What happens to a prompt, in order. Not every prompt sees every event (a cached run has no progress). */
export type PromptEvent =
  /** Accepted by ComfyUI; `position` is the number of prompts ahead of it (0: next), when known. Repeated when it moves. */
  | { type: 'queued'; position?: number }
  | { type: 'started' }
  /** Nodes served from ComfyUI's cache (not run again). */
  | { type: 'cached'; nodes: string[] }
  | { type: 'executing'; node: string }
  /** Sampler steps: `value` of `max`. */
  | { type: 'progress'; value: number; max: number; node: string | null }
  /** A sampler preview (only when ComfyUI runs with `--preview-method` other than `none`). */
  | { type: 'preview'; mime: string; image: Buffer }
  /** A node with UI output finished (also sent for a cached output node, with its earlier files). */
  | { type: 'executed'; node: string; images: FileRef[] };

/** The outcome of a prompt that succeeded. */
export interface PromptResult {
  promptId: string;
  /** The images of the output node, from the history entry. */
  images: FileRef[];
  /** True when the output node came from ComfyUI's cache: no new file was written (docs/comfyui-protocol.md §7). */
  cached: boolean;
}

/** Options of `ComfyBackend.run`. */
export interface RunOptions {
  /** The node whose images are the result (the SaveImage). */
  outputNode: string;
  /** Limit of the prompt's own run, from its start to its end, in milliseconds (`ComfyRunTimeoutError`). @default the backend's run timeout */
  timeoutMs?: number;
  /** Limit of its wait in the queue, from submission (or `attach()`) to its start, in milliseconds (`ComfyQueueTimeoutError`). @default the backend's queue timeout */
  queueTimeoutMs?: number;
  /** Called with each event of this prompt. Exceptions thrown by it are ignored. */
  onEvent?: (event: PromptEvent) => void;
  /** Put the prompt ahead of normal submissions. @default false */
  front?: boolean;
}

/** Options of `ComfyBackend.attach`: those of `run` but `front`. */
export type AttachOptions = Omit<RunOptions, 'front'>;

/** What a health check reads: the server's system stats and its queue (all clients). */
export interface BackendHealth {
  stats: SystemStats;
  queue: Queue;
}

/** A downloaded file. */
export interface Download {
  bytes: number;
  /** As the server declared it. */
  contentType: string;
}

/**
 * Liveness of the server's event channel; a listener asks `isConnected`, or the server, for more.
 * - `connected`: the first connection is open; prompts get live events from now on.
 * - `disconnected`: the open connection was lost (a reconnect follows unless the backend stopped).
 * - `reconnected`: a connection is open again after a loss: possibly a restarted server, with
 *   other models or nodes.
 */
export type LivenessEvent = 'connected' | 'disconnected' | 'reconnected';

/** One ComfyUI server, as the engine and the pool use it. */
export interface ComfyBackend {
  /** The server's base URL, normalized (no trailing slash): its identity in logs and in the database. */
  readonly url: string;
  /** True while live events arrive (the WebSocket is connected). */
  readonly isConnected: boolean;

  /** Connects; rejects if the first attempt fails, while it keeps trying in the background. */
  start(): Promise<void>;
  /** Rejects every pending `run`/`attach` with `ComfyWorkerStoppedError` (the prompts keep running on ComfyUI) and disconnects. */
  stop(): Promise<void>;

  /** Submits a prompt under our id (a fresh UUID) and waits for its outcome. */
  run(promptId: string, prompt: ApiPrompt, options: RunOptions): Promise<PromptResult>;
  /** Follows a prompt submitted earlier (before a crash, or elsewhere) to its outcome. */
  attach(promptId: string, options: AttachOptions): Promise<PromptResult>;
  /** Cancels a prompt (deleted if pending, interrupted if running); its `run` rejects with `ComfyInterruptedError`. */
  cancel(promptId: string): Promise<void>;
  /** Stops waiting for a prompt without touching it on the server; false if it was not in flight here. @default reason 'released by the caller' */
  release(promptId: string, reason?: string): boolean;

  /** Uploads an input image; use the returned `name`, which the server may change. @default options.overwrite false */
  uploadImage(data: Buffer, filename: string, options?: { overwrite?: boolean }): Promise<Uploaded>;
  /**
   * Downloads an output file to `destPath`, whole or not at all, making its folder when missing;
   * refuses files over `maxBytes` (`ComfyBadReplyError`); `durable: false` skips syncing it (a temp
   * file the caller syncs or drops).
   * @default options.maxBytes unlimited, options.durable true
   */
  download(file: FileRef, destPath: string, options?: { maxBytes?: number; durable?: boolean }): Promise<Download>;

  /** The server's queue, all clients' prompts. */
  queue(): Promise<Queue>;
  /** Removes these prompts if they are pending; running and unknown ids are ignored. */
  deleteQueued(promptIds: string[]): Promise<void>;
  /** Interrupts this prompt if it is running now (never another client's). */
  interrupt(promptId: string): Promise<void>;
  /** Reads the server's system stats and queue; rejects when it does not answer. */
  health(): Promise<BackendHealth>;
  /** Every node class the server has (large; the server rescans its model folders for it). */
  objectInfo(): Promise<ObjectInfo>;

  /** Listens to a liveness event; returns the function that stops listening. */
  on(event: LivenessEvent, listener: () => void): () => void;
}
