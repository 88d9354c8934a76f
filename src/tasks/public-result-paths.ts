/**
 * A task's legacy `result_path` as answers show it. The database keeps what the engine (absolute
 * paths) or the old service wrote; callers see paths relative to DATA_DIR, never a server path.
 */
import { basename, isAbsolute, normalize, relative, sep } from 'node:path';
import { resultPaths } from '../db/tasks.js';

/**
 * The paths of a stored `result_path` value relative to `dataDir` (absolute), with `/` separators.
 * A path outside DATA_DIR becomes its file name alone; a relative path stays as stored.
 */
export function publicResultPaths(raw: string | null, dataDir: string): string[] {
  return resultPaths(raw).map((stored) => {
    const rel = isAbsolute(stored) ? relative(dataDir, stored) : normalize(stored);
    const outside = rel === '' || rel === '.' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel);
    return outside ? basename(stored) : rel.split(sep).join('/');
  });
}
