/**
 * A fault switch for tests only: with KONTEXT_TEST_EXIT_AFTER_COMMIT set (to anything), the process
 * SIGKILLs itself right after committing the first frame that announces a finished image, before
 * publishing it, so a test can show what another replica makes of a frame that died unpublished.
 */
import type { ProgressFrame } from './progress-frame.js';

/** Called by the frame publisher between a frame's commit and its publish; undefined unless the switch is set. */
export const exitAfterCommit: ((frame: ProgressFrame) => void) | undefined = process.env.KONTEXT_TEST_EXIT_AFTER_COMMIT
  ? (frame) => {
      if (!frame.image) return;
      // Pipes are written synchronously on Linux: the test reads this line after the kill.
      process.stderr.write(`KONTEXT_TEST_EXIT_AFTER_COMMIT: killed after committing frame ${frame.seq} of task ${frame.taskId}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
  : undefined;
