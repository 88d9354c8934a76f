/** A task's latest persisted frame, read back from its row (the snapshot, and the frame a taker republishes). */
import type { TaskRow } from '../db/types.js';
import { emptyFrame, type ProgressFrame } from './progress-frame.js';

/**
 * The frame stored with `row` under its `seq` (an empty one when none was stored), with the row's
 * status and progress; previews are never stored, so `preview` is null.
 */
export function storedFrame(row: Pick<TaskRow, 'id' | 'status' | 'progress' | 'seq' | 'last_frame'>): ProgressFrame {
  const stored = row.last_frame ? (JSON.parse(row.last_frame) as Omit<ProgressFrame, 'seq'>) : emptyFrame(row.id, row.status, row.progress);
  return { ...stored, taskId: row.id, status: row.status, progress: row.progress, seq: row.seq, preview: null };
}
