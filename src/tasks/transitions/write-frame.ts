/** Writing a task's progress frame inside a transition. */
import type { Db } from '../../db/database.js';
import { saveFrame } from '../../db/tasks.js';
import type { TaskStatus, TaskUpdate } from '../../db/types.js';
import type { ProgressFrame } from '../progress-frame.js';

/**
 * Applies `changes` to the task and stores `frame` as its snapshot under the next `seq`, only while
 * the task is in one of `onlyIf` (all statuses when omitted). Returns the frame as published (with
 * its seq; previews are never stored, so the stored copy has none), or undefined when refused.
 * With `holder`, only while that instance holds the task's claim.
 */
export async function writeFrame(
  db: Db,
  taskId: string,
  changes: TaskUpdate,
  frame: Omit<ProgressFrame, 'seq'>,
  onlyIf?: readonly TaskStatus[],
  holder?: string,
): Promise<ProgressFrame | undefined> {
  const seq = await saveFrame(db, taskId, { ...changes, updated_at: new Date().toISOString() }, { ...frame, preview: null }, onlyIf, holder);
  return seq === undefined ? undefined : { ...frame, seq };
}
