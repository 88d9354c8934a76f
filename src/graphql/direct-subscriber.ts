/**
 * A subscriber whose shared results go straight to its connection (live-sink.ts). The task's frames
 * come synchronously from its watch (src/tasks/task-watch.ts); each is executed once per group
 * (shared-execution.ts's cache) and written by the sink. What the sink cannot write (a result with
 * errors, an execution that went async) goes through this iterator instead, as any subscription
 * result does (Yoga's masking, graphql-ws's `next`), and so does everything after it, to keep `seq`
 * order. The iterator also ends the operation after the final frame (the transport's `complete`),
 * and its `return()` (a client that left) stops the watch. A class, not closures: one of these lives
 * per subscriber, so its methods are shared.
 */
import type { ExecutionResult } from 'graphql';
import type { ProgressFrame } from '../tasks/progress-frame.js';
import type { FrameListener, TaskWatch } from '../tasks/task-watch.js';
import type { LiveSink } from './live-sink.js';

type MaybePromise<T> = T | Promise<T>;

/** A queued item: a result, or the error that ends the operation. */
type Queued = { result: MaybePromise<ExecutionResult> } | { error: unknown };

const done = (): IteratorReturnResult<void> => ({ value: undefined, done: true });

/** See the file comment; start it with `directSubscriber`. */
class DirectSubscriber implements FrameListener, AsyncGenerator<ExecutionResult, void, void> {
  #queue: Queued[] = [];
  /** Something went through the queue: everything after it must too. */
  #degraded = false;
  #ended = false;
  #waiting: (() => void) | undefined;

  constructor(
    private readonly watch: TaskWatch,
    private readonly sink: LiveSink,
    private readonly execute: (frame: ProgressFrame) => MaybePromise<ExecutionResult>,
    private readonly wrapError: (err: unknown) => unknown,
  ) {}

  deliver(frame: ProgressFrame, final: boolean): void {
    try {
      const result = this.execute(frame);
      if (this.#degraded || result instanceof Promise || !this.sink.write(result, final)) {
        this.#degraded = true;
        this.#queue.push({ result });
      }
    } catch (err) {
      this.#degraded = true;
      this.#queue.push({ error: err });
    }
    if (final) this.#ended = true;
    // A frame written directly wakes nobody: the iterator waits only for what it carries.
    if (this.#degraded || final) this.#wake();
  }

  async next(): Promise<IteratorResult<ExecutionResult, void>> {
    while (this.#queue.length === 0 && !this.#ended) await new Promise<void>((resolve) => (this.#waiting = resolve));
    const item = this.#queue.shift();
    if (!item) return done();
    if ('error' in item) {
      this.watch.close();
      throw this.wrapError(item.error);
    }
    return { value: await item.result, done: false };
  }

  async return(): Promise<IteratorResult<ExecutionResult, void>> {
    this.#ended = true;
    this.#queue.length = 0;
    this.watch.close();
    this.#wake();
    return done();
  }

  async throw(err: unknown): Promise<IteratorResult<ExecutionResult, void>> {
    await this.return();
    throw err;
  }

  /**
   * Calls `ready` once `next()` has something to return (a carried result, the end), without a
   * pending `next()`: a consumer that waits this way holds no async frame per subscriber meanwhile.
   */
  whenReady(ready: () => void): void {
    if (this.#queue.length > 0 || this.#ended) ready();
    else this.#waiting = ready;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #wake(): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.();
  }
}

/** The stream of a direct subscriber: what its sink did not take, and the end. */
export type DirectResults = AsyncGenerator<ExecutionResult, void, void> & Pick<DirectSubscriber, 'whenReady'>;

/**
 * Starts delivering `watch` (its snapshot now, synchronously) through `sink`, each frame executed by
 * `execute`; the iterator carries what the sink did not take and the completion. `wrapError`: how a
 * failure becomes the operation's error.
 */
export function directSubscriber(
  watch: TaskWatch,
  sink: LiveSink,
  execute: (frame: ProgressFrame) => MaybePromise<ExecutionResult>,
  wrapError: (err: unknown) => unknown,
): DirectResults {
  const subscriber = new DirectSubscriber(watch, sink, execute, wrapError);
  watch.listen(subscriber, sink.kind);
  return subscriber;
}
