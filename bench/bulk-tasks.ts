/**
 * Many stored tasks, fast, for the growth benchmarks: rows go straight into the SQLite file with
 * better-sqlite3 prepared statements, 10 000 tasks per transaction (Kysely's one insert per call
 * would take minutes for 100 000 tasks). The file must already be migrated (openDatabase once).
 */
import BetterSqlite3 from 'better-sqlite3';
import { newTaskId, promptIdFor } from '../src/tasks/ids.js';

/** What `insertBulkTasks` stores. */
export interface BulkTasks {
  count: number;
  /** Images per task. @default 3 */
  images?: number;
  /** @default 'completed' (with completed images and their file paths) */
  status?: 'completed' | 'pending';
  /** Creation time of the first task, in ms; each next one 10 ms later. @default now minus count x 10 ms */
  startMs?: number;
  /** When finished tasks finished, as an ISO time. @default their creation time */
  finishedAt?: string;
  /** The stored upload (its `uploads` row must exist) every task edits. @default none */
  uploadSha256?: string;
  /** API key ids (their rows must exist) the tasks belong to, in turn. @default none (the open service's) */
  owners?: readonly string[];
}

/** Inserts `count` tasks with their image rows into the SQLite `file`; returns their ids, oldest first. */
export function insertBulkTasks(file: string, options: BulkTasks): string[] {
  const sqlite = new BetterSqlite3(file);
  try {
    const per = options.images ?? 3;
    const done = (options.status ?? 'completed') === 'completed';
    const start = options.startMs ?? Date.now() - options.count * 10;
    const task = sqlite.prepare(
      `insert into tasks (id, description, status, progress, result_path, error_message, created_at, updated_at, count, size, steps, started_at, finished_at, upload_sha256, owner_key_id)
       values (?, ?, ?, ?, ?, null, ?, ?, ?, '1024x1024', 20, ?, ?, ?, ?)`,
    );
    const image = sqlite.prepare(
      `insert into images (task_id, idx, seed, prompt_id, worker, status, file_path, width, height, bytes, content_type, submitted_at, finished_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const ids: string[] = [];
    const batch = sqlite.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const ms = start + i * 10;
        const at = new Date(ms).toISOString();
        const id = newTaskId(ms);
        const finished = done ? (options.finishedAt ?? at) : null;
        const paths = Array.from({ length: per }, (_, k) => `images/${id}/${k}.png`);
        task.run(id, `stored task ${i}: make it night, keep the car`, done ? 'completed' : 'pending', done ? 100 : 0, done ? JSON.stringify(paths) : null, at, finished ?? at, per, finished, finished, options.uploadSha256 ?? null, options.owners?.length ? options.owners[i % options.owners.length]! : null);
        for (let k = 0; k < per; k++) {
          image.run(id, k, 1000 + i * per + k, promptIdFor(id, k), done ? 'http://127.0.0.1:8188' : null, done ? 'completed' : 'pending', done ? paths[k] : null,
            done ? 1024 : null, done ? 1024 : null, done ? 1_400_000 : null, done ? 'image/png' : null, finished, finished);
        }
        ids.push(id);
      }
    });
    for (let from = 0; from < options.count; from += 10_000) batch(from, Math.min(options.count, from + 10_000));
    return ids;
  } finally {
    sqlite.close();
  }
}
