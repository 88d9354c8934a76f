/** pending: a new task and its images enter the queue. */
import type { Db } from '../../db/database.js';
import { insertImages } from '../../db/images.js';
import { insertTask } from '../../db/tasks.js';
import type { NewImage, NewTask } from '../../db/types.js';
import { emptyFrame, type ProgressFrame } from '../progress-frame.js';
import { writeFrame } from './write-frame.js';

/** Inserts a pending task with its images and its first frame, in one transaction. */
export async function enqueueTask(db: Db, task: NewTask & { status: 'pending' }, images: NewImage[]): Promise<ProgressFrame> {
  return db.transaction().execute(async (trx) => {
    await insertTask(trx, task);
    await insertImages(trx, images);
    return (await writeFrame(trx, task.id, {}, emptyFrame(task.id, 'pending', 0)))!;
  });
}
