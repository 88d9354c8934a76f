/**
 * At most N jobs at once, the rest waiting in arrival order. Image renders go through one, so a
 * burst of variant requests decodes a few images at a time instead of all of them into memory.
 */

/** Runs jobs with bounded concurrency; see the module comment. */
export class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  /** @param max jobs at once, at least 1. */
  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`a limiter needs at least one slot, got ${max}`);
  }

  /** Jobs waiting for a slot now. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `job` once a slot is free; resolves or rejects as it does. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await job();
    } finally {
      // The slot passes straight to the next waiter (running stays the same), or is freed.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
