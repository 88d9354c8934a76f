/**
 * Every change of a task's or an image's status, one small module each, each one transaction that
 * also writes the progress frame it causes and returns it for publishing. The engine, the service
 * layer and the CLI call these; nothing else writes the `tasks` and `images` tables' states.
 */
import { announcePosition, announcePositions } from './announce-position.js';
import { cancelPendingTask } from './cancel-pending-task.js';
import { claimTask } from './claim-task.js';
import { completeImage } from './complete-image.js';
import { endTask } from './end-task.js';
import { enqueueTask } from './enqueue-task.js';
import { recordProgress } from './record-progress.js';
import { recoverTasks } from './recover-tasks.js';
import { requeueImage } from './requeue-image.js';
import { requestCancel } from './request-cancel.js';
import { settleTask } from './settle-task.js';
import { startImage } from './start-image.js';
import { submitImage } from './submit-image.js';

export const transitions = {
  enqueueTask,
  announcePosition,
  announcePositions,
  claimTask,
  cancelPendingTask,
  requestCancel,
  submitImage,
  startImage,
  requeueImage,
  completeImage,
  endTask,
  settleTask,
  recordProgress,
  recoverTasks,
};

/** The transitions as a value, so the engine's parts get them passed in (and tests can wrap them). */
export type Transitions = typeof transitions;
