/**
 * The one pub/sub through which progress flows back to clients. In-process by default; the Redis
 * implementation (redis-progress-bus.ts) lets several replicas share it.
 */
import { EventEmitter } from 'node:events';
import { isFinal, type ProgressFrame } from './progress-frame.js';

/**
 * Frames may have been lost (a broker connection dropped and came back): the subscriber should
 * re-read the snapshot from the database. Frames after the notice are delivered again as usual.
 */
export interface ResyncNotice {
  type: 'resync';
}

/** What a subscription yields: frames, and (only from a bus that can lose frames) re-sync notices. */
export type BusEvent = ProgressFrame | ResyncNotice;

/** True for a re-sync notice. */
export function isResync(event: BusEvent): event is ResyncNotice {
  return 'type' in event && event.type === 'resync';
}

/** A live subscription: events in publish order until `close()`. */
export interface FrameSubscription extends AsyncIterableIterator<BusEvent> {
  /**
   * Resolves once every frame published from now on is delivered (a broker may need a round trip
   * to start listening); rejects if listening failed. Already resolved on the in-process bus.
   */
  ready: Promise<void>;
  close(): void;
}

/** Where the engine publishes frames and watchers subscribe; in-process or over Redis. */
export interface ProgressBus {
  publish(frame: ProgressFrame): void;
  /**
   * Starts listening at once, before the first `next()`: a caller can subscribe, await `ready`,
   * read the snapshot, then iterate, without losing a frame published in between.
   */
  subscribe(taskId: string): FrameSubscription;
  /** How many subscriptions are open in this process (for metrics and tests). */
  subscriberCount(): number;
  /** Ends every open subscription and releases the bus's connections. */
  close(): Promise<void>;
}

/** Options of the in-process bus. */
export interface MemoryBusOptions {
  /** Frames kept per slow subscriber before the oldest are dropped (frames are absolute, so the next one repairs it). @default 256 */
  maxBuffered?: number;
}

/** The in-process bus (one process only); never emits re-sync notices. */
export function createMemoryProgressBus(options: MemoryBusOptions = {}): ProgressBus {
  const maxBuffered = options.maxBuffered ?? 256;
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const open = new Set<FrameSubscription>();
  return {
    publish(frame) {
      emitter.emit(frame.taskId, frame);
    },
    subscriberCount: () => open.size,
    subscribe(taskId) {
      const queue = createFrameSubscription({
        maxBuffered,
        ready: Promise.resolve(),
        onClose: () => {
          open.delete(queue.subscription);
          emitter.off(taskId, queue.push);
        },
      });
      emitter.on(taskId, queue.push);
      open.add(queue.subscription);
      return queue.subscription;
    },
    async close() {
      for (const sub of [...open]) sub.close();
    },
  };
}

/** Options of {@link createFrameSubscription}. */
export interface FrameSubscriptionOptions {
  /** Events kept while nobody reads before the oldest frames are dropped. */
  maxBuffered: number;
  /** The subscription's `ready`. */
  ready: Promise<void>;
  /** Called once, when the subscription closes (to stop feeding it). */
  onClose: () => void;
}

/** A subscription's buffer, shared by the bus implementations: a bus feeds it with `push`. */
export function createFrameSubscription(options: FrameSubscriptionOptions): { subscription: FrameSubscription; push: (event: BusEvent) => void } {
  const buffered: BusEvent[] = [];
  let waiting: ((r: IteratorResult<BusEvent>) => void) | undefined;
  let closed = false;
  // A caller that never awaits `ready` must not crash the process with an unhandled rejection.
  options.ready.catch(() => undefined);
  const push = (event: BusEvent) => {
    if (closed) return;
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w({ value: event, done: false });
      return;
    }
    // One pending notice already makes the reader re-read the snapshot.
    if (isResync(event) && buffered.some(isResync)) return;
    buffered.push(event);
    if (buffered.length > options.maxBuffered) {
      // Drop the oldest plain frame: the final one completes the subscription and a notice repairs losses.
      const i = buffered.findIndex((e) => !isResync(e) && !isFinal(e.status));
      buffered.splice(i === -1 ? 0 : i, 1);
    }
  };
  const close = () => {
    if (closed) return;
    closed = true;
    options.onClose();
    if (waiting) waiting({ value: undefined, done: true });
    waiting = undefined;
  };
  const subscription: FrameSubscription = {
    ready: options.ready,
    next() {
      const event = buffered.shift();
      if (event) return Promise.resolve({ value: event, done: false });
      if (closed) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => (waiting = resolve));
    },
    return() {
      close();
      return Promise.resolve({ value: undefined, done: true });
    },
    close,
    [Symbol.asyncIterator]() {
      return subscription;
    },
  };
  return { subscription, push };
}
