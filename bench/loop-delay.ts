/**
 * How long the event loop was blocked while something ran: Node's own histogram
 * (perf_hooks.monitorEventLoopDelay) for the p99, and a 5 ms timer whose lateness is the longest
 * single block (the histogram samples at its resolution and can miss the start of one).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Event-loop delay while `work` ran, in ms; `result` is what it returned. */
export interface LoopDelay<T> {
  result: T;
  maxMs: number;
  p99Ms: number;
  /** How long `work` took, in ms. */
  totalMs: number;
}

const TICK_MS = 5;

/** Runs `work` while measuring the event-loop delay. */
export async function measureLoopDelay<T>(work: () => Promise<T>): Promise<LoopDelay<T>> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - TICK_MS);
    last = now;
  }, TICK_MS);
  histogram.enable();
  const started = performance.now();
  try {
    const result = await work();
    const totalMs = performance.now() - started;
    return { result, totalMs, maxMs: Math.max(worst, histogram.max / 1e6), p99Ms: histogram.percentile(99) / 1e6 };
  } finally {
    histogram.disable();
    clearInterval(timer);
  }
}
