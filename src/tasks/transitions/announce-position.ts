/** pending -> pending: a waiting task's place in the queue changed. */
import type { Db } from '../../db/database.js';
import { emptyFrame, type ProgressFrame } from '../progress-frame.js';
import { writeFrame } from './write-frame.js';

/** Writes a frame with the task's queue position (1 = next); undefined when it is no longer pending. */
export function announcePosition(db: Db, taskId: string, position: number): Promise<ProgressFrame | undefined> {
  return writeFrame(db, taskId, {}, { ...emptyFrame(taskId, 'pending', 0), queuePosition: position }, ['pending']);
}

/**
 * Writes the frames of many new positions in one transaction (a claim moves up to 500 waiting
 * tasks: one commit instead of 500); returns the frames of the tasks still pending, to publish.
 */
export function announcePositions(db: Db, positions: readonly (readonly [taskId: string, position: number])[]): Promise<ProgressFrame[]> {
  return db.transaction().execute(async (trx) => {
    const frames: ProgressFrame[] = [];
    for (const [taskId, position] of positions) {
      const frame = await announcePosition(trx, taskId, position);
      if (frame) frames.push(frame);
    }
    return frames;
  });
}
