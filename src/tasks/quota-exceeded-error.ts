/** A generate request refused by a limit: nothing was stored for it. */

/** Which limit refused it: the key's own three, or the service's ceiling on queued tasks. */
export type QuotaLimit = 'max_concurrent' | 'images_per_day' | 'rate' | 'max_queued_tasks';

/** Thrown by the enqueue transition; REST answers 429 with Retry-After, GraphQL a QuotaExceededError. */
export class QuotaExceededError extends Error {
  override readonly name = 'QuotaExceededError';
  constructor(
    readonly limit: QuotaLimit,
    message: string,
    /** When trying again may succeed, in whole seconds (at least 1). */
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}
