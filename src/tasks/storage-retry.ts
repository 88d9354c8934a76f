/** Waiting out a full disk or a locked database for the state changes that must not be lost. */
import { setTimeout as sleep } from 'node:timers/promises';
import { describeWriteError, isStorageUnavailable } from '../db/write-health.js';
import type { Logger } from '../log.js';

/** Options of {@link retryWhileStorageUnavailable}. */
export interface StorageRetryOptions {
  /** Longest pause between two tries, in ms. @default 5000 */
  maxWaitMs?: number;
  /** Gives up (throws the last error) once this returns true. @default never */
  stopped?: () => boolean;
  log: Logger;
}

/**
 * Runs `change` (an image stored or recorded, a task ended); while the disk or the database is
 * unavailable (full, locked, read-only) it is tried again with backoff until it goes through or
 * `stopped()`. Other errors are thrown at once.
 */
export async function retryWhileStorageUnavailable<T>(what: string, change: () => Promise<T>, options: StorageRetryOptions): Promise<T> {
  const maxWaitMs = options.maxWaitMs ?? 5000;
  for (let wait = Math.min(250, maxWaitMs); ; wait = Math.min(maxWaitMs, wait * 2)) {
    try {
      return await change();
    } catch (err) {
      if (options.stopped?.() || !isStorageUnavailable(err)) throw err;
      options.log.warn(`${what} failed; trying again`, { error: describeWriteError(err), retry_ms: wait });
      await sleep(wait);
    }
  }
}
