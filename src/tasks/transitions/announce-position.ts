/** pending -> pending: a waiting task's place in the queue changed. */
import type { Db } from '../../db/database.js';
import { emptyFrame, type ProgressFrame } from '../progress-frame.js';
import { writeFrame } from './write-frame.js';

/** Writes a frame with the task's queue position (1 = next); undefined when it is no longer pending. */
export function announcePosition(db: Db, taskId: string, position: number): Promise<ProgressFrame | undefined> {
  return writeFrame(db, taskId, {}, { ...emptyFrame(taskId, 'pending', 0), queuePosition: position }, ['pending']);
}
