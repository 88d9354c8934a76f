/**
 * An in-memory ComfyUI server behind the `ComfyBackend` interface, for tests of the code above the
 * boundary (the pool, the engine) without HTTP or WebSocket: the way Kysely tests against a
 * DummyDriver. The test drives it: `goDown()` / `comeBack()` for liveness, `offer()` for the node
 * classes it has, `finish()` / `fail()` for the prompts it holds.
 */
import { EventEmitter } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type {
  AttachOptions,
  BackendHealth,
  ComfyBackend,
  Download,
  LivenessEvent,
  PromptResult,
  RunOptions,
} from '../../src/comfyui/backend.js';
import { ComfyInterruptedError, ComfyPromptVanishedError, ComfyUnreachableError, ComfyWorkerStoppedError } from '../../src/comfyui/errors.js';
import type { ApiPrompt, FileRef, ObjectInfo, Queue, QueueItem, Uploaded } from '../../src/comfyui/protocol.js';

interface Held {
  promptId: string;
  running: boolean;
  options: AttachOptions;
  resolve: (result: PromptResult) => void;
  reject: (err: Error) => void;
  promise: Promise<PromptResult>;
}

/** Node classes with no inputs to check: every prompt whose classes are offered passes the workflow check. */
export function objectInfoFor(prompt: ApiPrompt): ObjectInfo {
  return Object.fromEntries(
    Object.values(prompt).map((node) => [node.class_type, { input: { required: {} }, output: [], output_node: false, name: node.class_type }]),
  );
}

export class FakeBackend implements ComfyBackend {
  readonly url: string;
  isConnected = false;
  /** Every call, in order (`health`, `objectInfo`, `run <id>`, ...), for assertions. */
  readonly calls: string[] = [];
  /** Files uploaded, by name. */
  readonly uploads = new Map<string, Buffer>();

  private up = true;
  private everConnected = false;
  private stopped = false;
  private info: ObjectInfo;
  private readonly held = new Map<string, Held>();
  private readonly liveness = new EventEmitter<Record<LivenessEvent, []>>();

  /** @param info the node classes offered (`objectInfoFor(workflow.prompt)` for a server that can run it) */
  constructor(url: string, info: ObjectInfo) {
    this.url = url;
    this.info = info;
  }

  // ---- driven by the test ----------------------------------------------------------------------

  /** The server stops answering and its connection drops. */
  goDown(): void {
    this.up = false;
    if (!this.isConnected) return;
    this.isConnected = false;
    this.liveness.emit('disconnected');
  }

  /** The server answers again and the connection comes back. */
  comeBack(): void {
    this.up = true;
    if (this.stopped || this.isConnected) return;
    this.connect();
  }

  /** Changes the node classes the server offers (a model or custom node installed or removed). */
  offer(info: ObjectInfo): void {
    this.info = info;
  }

  /** Prompt ids held (queued or running), in submission order. */
  heldPrompts(): string[] {
    return [...this.held.keys()];
  }

  /** Ends a held prompt with one output image. */
  finish(promptId: string): void {
    const h = this.take(promptId);
    h.resolve({ promptId, images: [{ filename: `${promptId}.png`, subfolder: '', type: 'output' }], cached: false });
  }

  /** Ends a held prompt with an error. */
  fail(promptId: string, err: Error): void {
    this.take(promptId).reject(err);
  }

  // ---- ComfyBackend ----------------------------------------------------------------------------

  /** Connects, or rejects like a server that is down (and connects when it comes back). */
  async start(): Promise<void> {
    this.calls.push('start');
    this.ensureUp('WebSocket');
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.isConnected = false;
    for (const id of [...this.held.keys()]) this.take(id).reject(new ComfyWorkerStoppedError(this.url, id));
  }

  /** Holds the prompt until the test calls `finish` or `fail`. */
  run(promptId: string, _prompt: ApiPrompt, options: RunOptions): Promise<PromptResult> {
    this.calls.push(`run ${promptId}`);
    return this.hold(promptId, options);
  }

  /** Follows a held prompt; an unknown one has vanished. */
  attach(promptId: string, options: AttachOptions): Promise<PromptResult> {
    this.calls.push(`attach ${promptId}`);
    const h = this.held.get(promptId);
    if (h) return h.promise;
    return Promise.reject(new ComfyPromptVanishedError(this.url, promptId));
  }

  async cancel(promptId: string): Promise<void> {
    this.calls.push(`cancel ${promptId}`);
    this.ensureUp('POST /interrupt');
    if (this.held.has(promptId)) this.take(promptId).reject(new ComfyInterruptedError(this.url, promptId));
  }

  release(promptId: string, reason = 'released by the caller'): boolean {
    this.calls.push(`release ${promptId}`);
    if (!this.held.has(promptId)) return false;
    this.take(promptId).reject(new ComfyWorkerStoppedError(this.url, promptId, reason));
    return true;
  }

  async uploadImage(data: Buffer, filename: string): Promise<Uploaded> {
    this.calls.push(`uploadImage ${filename}`);
    this.ensureUp('POST /upload/image');
    this.uploads.set(filename, data);
    return { name: filename, subfolder: '', type: 'input' };
  }

  /** Writes the file's name as its content (its folder made, as the real download makes it). */
  async download(file: FileRef, destPath: string): Promise<Download> {
    this.calls.push(`download ${file.filename}`);
    this.ensureUp('GET /view');
    const bytes = Buffer.from(file.filename);
    await mkdir(dirname(destPath), { recursive: true });
    await writeFile(destPath, bytes);
    return { bytes: bytes.length, contentType: 'image/png' };
  }

  async queue(): Promise<Queue> {
    this.calls.push('queue');
    this.ensureUp('GET /queue');
    return this.snapshot();
  }

  async deleteQueued(promptIds: string[]): Promise<void> {
    this.calls.push(`deleteQueued ${promptIds.join(',')}`);
    this.ensureUp('POST /queue delete');
    for (const id of promptIds) if (this.held.get(id)?.running === false) this.take(id).reject(new ComfyInterruptedError(this.url, id));
  }

  async interrupt(promptId: string): Promise<void> {
    this.calls.push(`interrupt ${promptId}`);
    this.ensureUp('POST /interrupt');
    if (this.held.get(promptId)?.running) this.take(promptId).reject(new ComfyInterruptedError(this.url, promptId));
  }

  async health(): Promise<BackendHealth> {
    this.calls.push('health');
    this.ensureUp('GET /system_stats');
    return { stats: { system: {}, devices: [{ name: 'fake GPU', type: 'cuda' }] }, queue: this.snapshot() };
  }

  async objectInfo(): Promise<ObjectInfo> {
    this.calls.push('objectInfo');
    this.ensureUp('GET /object_info');
    return this.info;
  }

  on(event: LivenessEvent, listener: () => void): () => void {
    this.liveness.on(event, listener);
    return () => this.liveness.off(event, listener);
  }

  // ----------------------------------------------------------------------------------------------

  private connect(): void {
    this.isConnected = true;
    this.liveness.emit(this.everConnected ? 'reconnected' : 'connected');
    this.everConnected = true;
  }

  private ensureUp(operation: string): void {
    if (this.stopped) throw new ComfyWorkerStoppedError(this.url);
    if (!this.up) throw new ComfyUnreachableError(this.url, 'ECONNREFUSED', operation);
  }

  private hold(promptId: string, options: AttachOptions): Promise<PromptResult> {
    if (this.stopped) return Promise.reject(new ComfyWorkerStoppedError(this.url, promptId));
    if (!this.up) return Promise.reject(new ComfyUnreachableError(this.url, 'ECONNREFUSED', 'POST /prompt'));
    let resolve!: (result: PromptResult) => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<PromptResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined); // like ComfyWorker: a dropped promise is never an unhandled rejection
    // The first prompt held runs, the others wait behind it.
    const running = [...this.held.values()].every((h) => !h.running);
    this.held.set(promptId, { promptId, running, options, resolve, reject, promise });
    options.onEvent?.(running ? { type: 'started' } : { type: 'queued', position: this.held.size - 1 });
    return promise;
  }

  private take(promptId: string): Held {
    const h = this.held.get(promptId);
    if (!h) throw new Error(`prompt ${promptId} is not held by ${this.url}`);
    this.held.delete(promptId);
    if (h.running) {
      const nextUp = this.held.values().next().value;
      if (nextUp) {
        nextUp.running = true;
        nextUp.options.onEvent?.({ type: 'started' });
      }
    }
    return h;
  }

  private snapshot(): Queue {
    const item = (h: Held, i: number): QueueItem => [i, h.promptId, {}, {}, []];
    const all = [...this.held.values()];
    return { queue_running: all.filter((h) => h.running).map(item), queue_pending: all.filter((h) => !h.running).map(item) };
  }
}
