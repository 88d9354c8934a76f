/** processing -> processing: a sampler step, a node, an ETA; the frame every subscriber gets. */
import type { Db } from '../../db/database.js';
import type { ProgressFrame } from '../progress-frame.js';
import { writeFrame } from './write-frame.js';

/**
 * Stores the task's progress with its frame while it is processing (and, with `holder`, claimed by
 * that instance); undefined once it has ended or another replica took it over.
 */
export function recordProgress(db: Db, frame: Omit<ProgressFrame, 'seq'>, holder?: string): Promise<ProgressFrame | undefined> {
  return writeFrame(db, frame.taskId, { progress: frame.progress }, frame, ['processing'], holder);
}
