/**
 * A subscriber whose shared results go straight to its connection (live-sink.ts). The task's frames
 * come synchronously from its watch (src/tasks/task-watch.ts); each is executed once per group
 * (shared-execution.ts's cache) and written by the sink. What the sink cannot write (a result with
 * errors, an execution that went async) goes through the returned iterator instead, as any
 * subscription result does (Yoga's masking, graphql-ws's `next`), and so does everything after it,
 * to keep `seq` order. The iterator also ends the operation after the final frame (the transport's
 * `complete`), and its `return()` (a client that left) stops the watch.
 */
import type { ExecutionResult } from 'graphql';
import type { ProgressFrame } from '../tasks/progress-frame.js';
import type { TaskWatch } from '../tasks/task-watch.js';
import type { LiveSink } from './live-sink.js';

type MaybePromise<T> = T | Promise<T>;

/** A queued item: a result, or the error that ends the operation. */
type Queued = { result: MaybePromise<ExecutionResult> } | { error: unknown };

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
): AsyncGenerator<ExecutionResult, void, void> {
  const queue: Queued[] = [];
  let degraded = false;
  let ended = false;
  let waiting: (() => void) | undefined;
  const wake = () => {
    const w = waiting;
    waiting = undefined;
    w?.();
  };
  watch.listen((frame, final) => {
    try {
      const result = execute(frame);
      if (degraded || result instanceof Promise || !sink.write(result, final)) {
        degraded = true; // from now on every frame queues behind this one
        queue.push({ result });
      }
    } catch (err) {
      degraded = true;
      queue.push({ error: err });
    }
    if (final) ended = true;
    // A frame written directly wakes nobody: the iterator waits only for what it carries.
    if (degraded || final) wake();
  });
  const done = (): IteratorReturnResult<void> => ({ value: undefined, done: true });
  const iterator: AsyncGenerator<ExecutionResult, void, void> = {
    async next() {
      while (queue.length === 0 && !ended) await new Promise<void>((resolve) => (waiting = resolve));
      const item = queue.shift();
      if (!item) return done();
      if ('error' in item) {
        watch.close();
        throw wrapError(item.error);
      }
      return { value: await item.result, done: false };
    },
    async return() {
      ended = true;
      queue.length = 0;
      watch.close();
      wake();
      return done();
    },
    async throw(err: unknown) {
      await iterator.return();
      throw err;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  } as AsyncGenerator<ExecutionResult, void, void>;
  return iterator;
}
