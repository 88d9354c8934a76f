/**
 * The one pub/sub through which progress flows back to clients. In-process today; a Redis-backed
 * implementation of the same interface lets several service instances share it.
 */
import { EventEmitter } from 'node:events';
import { isFinal, type ProgressFrame } from './progress-frame.js';

/** A live subscription: frames in publish order until `close()`. */
export interface FrameSubscription extends AsyncIterableIterator<ProgressFrame> {
  close(): void;
}

export interface ProgressBus {
  publish(frame: ProgressFrame): void;
  /**
   * Starts listening at once, before the first `next()`: a caller can subscribe, then read the
   * snapshot, then iterate, without losing a frame published in between.
   */
  subscribe(taskId: string): FrameSubscription;
  /** How many subscriptions are open (for metrics and tests). */
  subscriberCount(): number;
}

/** Options of the in-process bus. */
export interface MemoryBusOptions {
  /** Frames kept per slow subscriber before the oldest are dropped (frames are absolute, so the next one repairs it). @default 256 */
  maxBuffered?: number;
}

export function createMemoryProgressBus(options: MemoryBusOptions = {}): ProgressBus {
  const maxBuffered = options.maxBuffered ?? 256;
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  let open = 0;
  return {
    publish(frame) {
      emitter.emit(frame.taskId, frame);
    },
    subscriberCount: () => open,
    subscribe(taskId) {
      const buffered: ProgressFrame[] = [];
      let waiting: ((r: IteratorResult<ProgressFrame>) => void) | undefined;
      let closed = false;
      const listener = (frame: ProgressFrame) => {
        if (waiting) {
          const w = waiting;
          waiting = undefined;
          w({ value: frame, done: false });
          return;
        }
        buffered.push(frame);
        if (buffered.length > maxBuffered) {
          // Drop the oldest frame that is not final: the final one completes the subscription.
          const i = buffered.findIndex((f) => !isFinal(f.status));
          buffered.splice(i === -1 ? 0 : i, 1);
        }
      };
      emitter.on(taskId, listener);
      open++;
      const close = () => {
        if (closed) return;
        closed = true;
        open--;
        emitter.off(taskId, listener);
        if (waiting) waiting({ value: undefined, done: true });
        waiting = undefined;
      };
      const sub: FrameSubscription = {
        next() {
          const frame = buffered.shift();
          if (frame) return Promise.resolve({ value: frame, done: false });
          if (closed) return Promise.resolve({ value: undefined, done: true });
          return new Promise((resolve) => (waiting = resolve));
        },
        return() {
          close();
          return Promise.resolve({ value: undefined, done: true });
        },
        close,
        [Symbol.asyncIterator]() {
          return sub;
        },
      };
      return sub;
    },
  };
}
