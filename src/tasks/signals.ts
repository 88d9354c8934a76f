/**
 * Signals between replicas: small hints that make another replica act now rather than at its next
 * poll. In-process by default; the Redis implementation (redis-signals.ts) reaches every replica.
 * Every subscriber gets every signal, the publishing process's own subscribers included.
 */
import { EventEmitter } from 'node:events';

/** Stop this task if you run it (its cancel is already stored in the database). */
export interface CancelSignal {
  type: 'cancel';
  taskId: string;
}

/** Look at the queue again: a task was queued or a GPU slot freed. */
export interface WakeSignal {
  type: 'wake';
}

export type Signal = CancelSignal | WakeSignal;

/**
 * Signals may have been lost (a broker connection dropped and came back): re-check the database
 * for cancel requests and queued tasks. Only delivered to local subscribers, never published.
 */
export interface SignalsResync {
  type: 'resync';
}

export type SignalListener = (event: Signal | SignalsResync) => void;

/** A listener's registration. */
export interface SignalSubscription {
  /** Resolves once every signal published from now on reaches the listener; rejects if listening failed. */
  ready: Promise<void>;
  close(): void;
}

/** Publish and receive signals; implemented in-process and over Redis. */
export interface Signals {
  publish(signal: Signal): void;
  /** Calls `listener` with every signal until the subscription is closed. */
  subscribe(listener: SignalListener): SignalSubscription;
  /** Stops every listener and releases the connections. */
  close(): Promise<void>;
}

/** Signals within one process. Delivery is asynchronous (as over Redis), in publish order; never emits `resync`. */
export function createMemorySignals(): Signals {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  let closed = false;
  return {
    publish(signal) {
      if (closed) return;
      // A copy, so that a listener cannot change what the others get.
      const copy: Signal = { ...signal };
      queueMicrotask(() => emitter.emit('signal', copy));
    },
    subscribe(listener) {
      emitter.on('signal', listener);
      return { ready: Promise.resolve(), close: () => emitter.off('signal', listener) };
    },
    async close() {
      closed = true;
      emitter.removeAllListeners();
    },
  };
}
