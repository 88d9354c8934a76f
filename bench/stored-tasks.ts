/**
 * Stored tasks for the read benchmarks: finished tasks with finished images, as a busy service
 * accumulates them, and the service that only reads them.
 */
import { startApp, type App, type AppOptions } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import type { Db } from '../src/db/database.js';
import { insertImages } from '../src/db/images.js';
import { insertTask } from '../src/db/tasks.js';
import type { NewImage } from '../src/db/types.js';
import { newTaskId, promptIdFor } from '../src/tasks/ids.js';

/** `count` completed tasks, one second apart, with 1-4 finished images each, on any dialect; returns their ids. */
export async function seedStoredTasks(db: Db, count: number): Promise<string[]> {
  const start = Date.now() - count * 1000;
  const ids: string[] = [];
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < count; i++) {
      const at = new Date(start + i * 1000).toISOString();
      const id = newTaskId(start + i * 1000);
      const images = 1 + (i % 4);
      await insertTask(trx, {
        id,
        description: `stored task ${i}: make it night, keep the car`,
        status: 'completed',
        progress: 100,
        result_path: JSON.stringify(Array.from({ length: images }, (_, k) => `images/${id}_${k}.png`)),
        error_message: null,
        created_at: at,
        updated_at: at,
        count: images,
        size: '1024x1024',
        steps: 20,
        started_at: at,
        finished_at: at,
      });
      const rows: NewImage[] = Array.from({ length: images }, (_, k) => ({
        task_id: id,
        idx: k,
        seed: 1000 + i * 4 + k,
        prompt_id: promptIdFor(id, k),
        worker: 'http://127.0.0.1:8188',
        status: 'completed',
        file_path: `images/${id}_${k}.png`,
        width: 1024,
        height: 1024,
        bytes: 1_400_000,
        content_type: 'image/png',
        error: null,
        submitted_at: at,
        finished_at: at,
      }));
      await insertImages(trx, rows);
      ids.push(id);
    }
  });
  return ids;
}

/**
 * The service over stored tasks, on 127.0.0.1 at a free port: no ComfyUI (the tasks are finished)
 * and an engine that does not tick, so the only queries are the requests' own. `config` overrides
 * the defaults (give at least `dataDir`); `onQuery` sees every query.
 */
export function startReader(config: Partial<Config> & Pick<Config, 'dataDir'>, onQuery: NonNullable<AppOptions['onQuery']>): Promise<App> {
  return startApp(
    { ...loadConfig({}), host: '127.0.0.1', port: 0, comfyuiUrls: ['http://127.0.0.1:9'], ...config },
    { engine: { tickMs: 3_600_000, cleanupIntervalMs: 3_600_000 }, onQuery, instance: 'bench-reads' },
  );
}
