/** image submitted -> running: ComfyUI started executing its prompt. */
import type { Db } from '../../db/database.js';
import { updateImage } from '../../db/images.js';

/** Marks the image running if it is still submitted; false otherwise. */
export function startImage(db: Db, taskId: string, index: number): Promise<boolean> {
  return updateImage(db, taskId, index, { status: 'running' }, ['submitted']);
}
