/**
 * Runs a task's transitions one after the other and publishes the frame each wrote: subscribers see
 * a task's frames in `seq` order, and never a state the database does not have.
 */
import { exitAfterCommit } from './exit-after-commit.js';
import type { ProgressBus } from './progress-bus.js';
import type { ProgressFrame } from './progress-frame.js';

export class FramePublisher {
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly bus: ProgressBus) {}

  /**
   * Runs `transition` after the task's earlier ones have settled, then publishes the frame it
   * returns (alone or as `.frame`), with `preview` (never stored) added. Resolves with its result.
   */
  run<T extends ProgressFrame | { frame: ProgressFrame } | undefined>(taskId: string, transition: () => Promise<T>, preview: string | null = null): Promise<T> {
    const previous = this.chains.get(taskId) ?? Promise.resolve();
    const next = previous.then(async () => {
      const result = await transition();
      const frame = result && 'frame' in result ? result.frame : (result as ProgressFrame | undefined);
      if (frame) {
        exitAfterCommit?.(frame);
        this.bus.publish({ ...frame, preview });
      }
      return result;
    });
    const settled = next.catch(() => undefined);
    this.chains.set(taskId, settled);
    // Forget a task's chain once nothing is queued behind it.
    void settled.then(() => {
      if (this.chains.get(taskId) === settled) this.chains.delete(taskId);
    });
    return next;
  }

  /** Waits until every transition started so far has settled. */
  async idle(): Promise<void> {
    await Promise.all([...this.chains.values()]);
  }
}
