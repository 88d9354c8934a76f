/**
 * `npm run bench -- growth`: how the costs grow with the data. Reads over 100 000 stored tasks
 * against 1000, the queue's hot paths with 10 000 queued against 100, start-up with 10 000 pending
 * against none, and cleanup of 100 000 expired tasks against the 50 ms event-loop limit.
 */
import { benchGrowthCleanup } from './growth-cleanup.js';
import { benchGrowthQueue } from './growth-queue.js';
import { benchGrowthReads } from './growth-reads.js';
import { benchGrowthStartup } from './growth-startup.js';
import type { BenchRow } from './table.js';

/** Every growth row, one benchmark after the other (each alternates its own figure and baseline). */
export async function benchGrowth(): Promise<BenchRow[]> {
  return [...(await benchGrowthReads()), ...(await benchGrowthQueue()), ...(await benchGrowthStartup()), ...(await benchGrowthCleanup())];
}
