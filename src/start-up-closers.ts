/**
 * What a start has opened so far, to close if a later step fails: each part defers its close as it
 * opens, and a failure anywhere (before or after the server listens) closes them all in reverse,
 * instead of a clean-up block per step that must list everything opened before it.
 */
import type { Logger } from './log.js';

export class StartUpClosers {
  private readonly closers: { what: string; close: () => unknown }[] = [];

  constructor(private readonly log: Logger) {}

  /** Registers `close` (named `what` in the log) to run if the start fails; the last one registered runs first. */
  defer(what: string, close: () => unknown): void {
    this.closers.push({ what, close });
  }

  /**
   * Runs every deferred close, last first, each once. An error from one is logged and the rest still
   * run: the start's own error is the one its caller sees, not one from cleaning up after it.
   */
  async closeAll(): Promise<void> {
    for (let c = this.closers.pop(); c; c = this.closers.pop()) {
      try {
        await c.close();
      } catch (err) {
        this.log.warn(`after the failed start, closing ${c.what} failed too`, { error: String(err) });
      }
    }
  }

  /** Runs `start`; if it throws, closes what it deferred, then rethrows its error. */
  async run<T>(start: (closers: this) => Promise<T>): Promise<T> {
    try {
      return await start(this);
    } catch (err) {
      await this.closeAll();
      throw err;
    }
  }
}
