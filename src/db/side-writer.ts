/**
 * Bulk writes off the event loop (cleanup). On SQLite every statement is synchronous, and deleting
 * 100 000 tasks is a few thousand deletes: each used ~3 ms of CPU, but one that met a busy disk
 * (dirty-page writeback, another process's fsync) blocked the event loop for 90 ms while using
 * 7 ms of CPU. So on an SQLite file in WAL mode the statements run on a second connection in a
 * worker thread, where waiting on the disk (or on another writer's lock) stops nothing else.
 *
 * The same worker takes the WAL checkpoints: for the duration, the service's connection has its
 * automatic checkpoints off (they would run inside whichever of its commits crosses 1000 pages,
 * with an fsync of the database file) and `checkpoint()` runs one (PASSIVE: never waits for
 * readers or the writer) in the worker; `close()` restores the setting. On Postgres, or SQLite not
 * in WAL mode, statements go through the database handle and checkpoints are nothing.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { sql, type CompiledQuery } from 'kysely';
import { writeHealthOf, type Db } from './database.js';
import { dialectOf } from './dialect.js';
import type { WriteHealth } from './write-health.js';

/** Runs write statements and checkpoints beside the service's connection; `close` when done. */
export interface SideWriter {
  /** Runs one write statement (in its own transaction); rejects with SQLite's error and `code`. */
  run(query: CompiledQuery): Promise<void>;
  /** Checkpoints the WAL; a failed checkpoint is not an error (the next one, or SQLite's own after `close`, takes the WAL). */
  checkpoint(): Promise<void>;
  /** Stops the worker and gives the service's connection its automatic checkpoints back. */
  close(): Promise<void>;
}

/** What the worker answers for one request. */
interface Answer {
  id: number;
  error: { message: string; code?: string } | null;
}

// CommonJS, as `eval` workers run it; better-sqlite3's path is resolved here so any layout works.
// The pragmas are the service's own (database.ts), except busy_timeout: waiting is this thread's job.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma('busy_timeout = ' + workerData.busyTimeoutMs);
db.pragma('synchronous = NORMAL');
db.pragma('foreign_keys = ON');
db.pragma('wal_autocheckpoint = 0');
parentPort.on('message', (m) => {
  if (m.kind === 'close') { db.close(); parentPort.close(); return; }
  try {
    if (m.kind === 'checkpoint') db.pragma('wal_checkpoint(PASSIVE)');
    else db.prepare(m.sql).run(...m.parameters);
    parentPort.postMessage({ id: m.id, error: null });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: { message: String(e && e.message), code: e && e.code } });
  }
});`;

/** Options of {@link openSideWriter}. */
export interface SideWriterOptions {
  /** How long the worker's statements wait for another connection's write lock, in ms. @default 5000 */
  busyTimeoutMs?: number;
  /** Told of every statement's outcome, as the driver tells it of its own writes. @default the one `db` was opened with */
  health?: WriteHealth;
}

/** A side writer for `db`: a worker thread if it is an SQLite file in WAL mode, otherwise `db` itself. */
export async function openSideWriter(db: Db, options: SideWriterOptions = {}): Promise<SideWriter> {
  const inline: SideWriter = { run: async (query) => void (await db.executeQuery(query)), checkpoint: async () => {}, close: async () => {} };
  if (dialectOf(db) !== 'sqlite') return inline;
  const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(db);
  const files = await sql<{ name: string; file: string }>`pragma database_list`.execute(db);
  const file = files.rows.find((r) => r.name === 'main')?.file;
  if (mode.rows[0]?.journal_mode !== 'wal' || !file) return inline;
  const before = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(db);
  const pages = Number(before.rows[0]?.wal_autocheckpoint ?? 1000);
  // A full disk or a lock seen here shows on /ready as the driver's own failures do.
  const health = options.health ?? writeHealthOf(db);
  const worker = new Worker(WORKER, {
    eval: true,
    // Not the process's flags: `--input-type=module` (a `node --eval` script) would make this CommonJS code ESM.
    execArgv: [],
    workerData: { file, module: createRequire(import.meta.url).resolve('better-sqlite3'), busyTimeoutMs: options.busyTimeoutMs ?? 5000 },
  });
  // Kept referenced: in `kontext cleanup` the worker's answer may be all the event loop waits for.
  const pending = new Map<number, (answer: Answer) => void>();
  let nextId = 0;
  let broken: Error | undefined;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const fail = (err: Error) => {
    broken ??= err;
    for (const settle of pending.values()) settle({ id: -1, error: { message: err.message } });
    pending.clear();
  };
  worker.on('message', (answer: Answer) => {
    pending.get(answer.id)?.(answer);
    pending.delete(answer.id);
  });
  worker.once('error', fail);
  void exited.then(() => fail(new Error('the side writer stopped')));
  const ask = (message: { kind: 'run'; sql: string; parameters: readonly unknown[] } | { kind: 'checkpoint' }): Promise<Answer> => {
    if (broken) return Promise.resolve({ id: -1, error: { message: broken.message } });
    const id = nextId++;
    const answer = new Promise<Answer>((resolve) => pending.set(id, resolve));
    worker.postMessage({ ...message, id });
    return answer;
  };
  await sql`pragma wal_autocheckpoint = 0`.execute(db);
  return {
    async run(query) {
      const { error } = await ask({ kind: 'run', sql: query.sql, parameters: query.parameters });
      if (!error) return void health?.succeeded();
      const err = Object.assign(new Error(error.message), error.code ? { code: error.code } : {});
      health?.failed(err);
      throw err;
    },
    async checkpoint() {
      await ask({ kind: 'checkpoint' });
    },
    async close() {
      try {
        await sql.raw(`pragma wal_autocheckpoint = ${pages}`).execute(db);
      } finally {
        // Also when the database was closed under a running cleanup: a worker left running would keep the process alive.
        if (!broken) worker.postMessage({ kind: 'close' });
        await exited;
      }
    },
  };
}
