/** When a failed webhook delivery is tried again: exponential backoff with jitter, within the retry window. */

/** Options of {@link nextAttemptAt}. */
export interface BackoffOptions {
  /** Longest wait before the first retry, in ms; each later one may wait twice as long. @default 5000 */
  firstRetryMs?: number;
  /** Longest wait between two attempts, in ms. @default 3_600_000 */
  maxDelayMs?: number;
  /** A number in [0, 1). @default Math.random */
  random?: () => number;
}

/**
 * The delay before the next attempt after `attempts` failed ones (1 = the first failed): a random
 * time between half and all of `firstRetryMs * 2^(attempts-1)`, capped at `maxDelayMs`. Half is kept
 * so retries stay spread out but do not come back at once; the jitter keeps many failing events
 * (a receiver down) from retrying in step.
 */
export function retryDelayMs(attempts: number, options: BackoffOptions = {}): number {
  const first = options.firstRetryMs ?? 5000;
  const cap = options.maxDelayMs ?? 3_600_000;
  const ceiling = Math.min(cap, first * 2 ** Math.min(30, Math.max(0, attempts - 1)));
  return Math.round(ceiling * (0.5 + 0.5 * (options.random ?? Math.random)()));
}

/**
 * When to try again after `attempts` failed ones at `now`, or undefined when that would be past
 * the window of `retryMs` from `since` (WEBHOOK_RETRY_HOURS from the event's creation): give up.
 */
export function nextAttemptAt(attempts: number, now: Date, since: Date, retryMs: number, options: BackoffOptions = {}): Date | undefined {
  const at = new Date(now.getTime() + retryDelayMs(attempts, options));
  return at.getTime() > since.getTime() + retryMs ? undefined : at;
}
