/**
 * One subscriber's view of a task's progress: its own snapshot first, then every later frame in
 * `seq` order, ending after the final one. Fed by the task's one bus subscription (task-watch-hub.ts),
 * it is either listened to (`listen`: frames handed over synchronously, for transports that write
 * them straight to their sockets) or iterated (an async iterator, for everything else).
 */
import { isFinal, type ProgressFrame } from './progress-frame.js';
import { DEFAULT_KIND, type FrameWatcher, type TaskWatchHub } from './task-watch-hub.js';

/** Frames kept for a reader that does not keep up before the oldest plain ones are dropped (frames are absolute). */
const MAX_BUFFERED = 256;

/** Receives a watch's frames: the snapshot first; `final` on the last one, after which nothing comes. */
export interface FrameListener {
  deliver(frame: ProgressFrame, final: boolean): void;
}

/** A task's frames for one subscriber; see the file comment. */
export class TaskWatch implements FrameWatcher, AsyncIterableIterator<ProgressFrame> {
  /** Frames before `listen`, or not yet read by the iterator. */
  #buffered: ProgressFrame[] = [];
  /** `start` ran (the snapshot is not kept: a watch lives as long as its subscriber, the snapshot need not). */
  #started = false;
  #listener: FrameListener | undefined;
  #last = -1;
  /** No frame comes any more (the final one was taken, or the watch was closed). */
  #ended = false;
  #waiting: ((step: IteratorResult<ProgressFrame>) => void) | undefined;

  constructor(
    readonly taskId: string,
    private readonly hub: TaskWatchHub,
  ) {}

  /** Sets the snapshot (read once the hub listens): frames it already covers are dropped. */
  start(snapshot: ProgressFrame): void {
    this.#started = true;
    this.#last = snapshot.seq;
    const early = this.#buffered;
    this.#buffered = [snapshot];
    if (isFinal(snapshot.status)) this.#end();
    else for (const frame of early) this.frame(frame);
  }

  /** From the hub: a frame of the task. */
  frame(frame: ProgressFrame): void {
    if (this.#ended) return;
    if (!this.#started) {
      this.#buffered.push(frame); // filtered by `start`
      return;
    }
    if (frame.seq <= this.#last) return; // already covered by the snapshot
    this.#last = frame.seq;
    const final = isFinal(frame.status);
    if (final) this.#end();
    if (this.#listener) return this.#listener.deliver(frame, final);
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = undefined;
      return w({ value: frame, done: false });
    }
    this.#buffered.push(frame);
    if (this.#buffered.length > MAX_BUFFERED) {
      // The oldest plain frame goes: the final one is what completes the subscriber.
      const i = this.#buffered.findIndex((f) => !isFinal(f.status));
      this.#buffered.splice(i === -1 ? 0 : i, 1);
    }
  }

  /**
   * Hands every frame from the snapshot on to `listener`, synchronously as they come; instead of
   * iterating. `kind`: the transport's name, which orders the task's fan-out (task-watch-hub.ts).
   * @default the iterated watches' kind
   */
  listen(listener: FrameListener, kind = DEFAULT_KIND): void {
    const pending = this.#buffered;
    this.#buffered = [];
    const last = pending.length - 1;
    pending.forEach((frame, i) => listener.deliver(frame, this.#ended && i === last));
    if (this.#ended) return;
    this.#listener = listener;
    if (kind !== DEFAULT_KIND) this.hub.setKind(this.taskId, this, kind);
  }

  /** Stops the frames (a subscriber left); no final frame comes. */
  close(): void {
    this.#end();
    this.#buffered = [];
    this.#listener = undefined;
    this.#waiting?.({ value: undefined, done: true });
    this.#waiting = undefined;
  }

  next(): Promise<IteratorResult<ProgressFrame>> {
    const frame = this.#buffered.shift();
    if (frame) return Promise.resolve({ value: frame, done: false });
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.#waiting = resolve));
  }

  return(): Promise<IteratorResult<ProgressFrame>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(err?: unknown): Promise<IteratorResult<ProgressFrame>> {
    this.close();
    return Promise.reject(err);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.hub.remove(this.taskId, this);
  }
}
