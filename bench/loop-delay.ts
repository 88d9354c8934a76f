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
  /** CPU time this process used (all threads) during the longest block, in ms: far less than the block means it waited (descheduled on a busy machine, or a synchronous disk wait). */
  maxCpuMs: number;
}

const TICK_MS = 5;

/** Runs `work` while measuring the event-loop delay. */
export async function measureLoopDelay<T>(work: () => Promise<T>): Promise<LoopDelay<T>> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let last = performance.now();
  let worst = 0;
  let worstCpu = 0;
  let lastCpu = process.cpuUsage();
  const timer = setInterval(() => {
    const now = performance.now();
    const cpu = process.cpuUsage(lastCpu);
    lastCpu = process.cpuUsage();
    if (now - last - TICK_MS > worst) {
      worst = now - last - TICK_MS;
      worstCpu = (cpu.user + cpu.system) / 1000;
    }
    last = now;
  }, TICK_MS);
  histogram.enable();
  const started = performance.now();
  try {
    const result = await work();
    const totalMs = performance.now() - started;
    return { result, totalMs, maxMs: Math.max(worst, histogram.max / 1e6), p99Ms: histogram.percentile(99) / 1e6, maxCpuMs: worstCpu };
  } finally {
    histogram.disable();
    clearInterval(timer);
  }
}
