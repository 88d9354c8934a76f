/**
 * WAL checkpoints off the event loop while cleanup deletes in bulk (SQLite only). Deleting 100 000
 * tasks dirties an index page or more per row, so SQLite's automatic checkpoint (every 1000 WAL
 * pages, run inside the commit that crosses it, with an fsync of the database file) fell on every
 * few batches: those commits blocked the event loop 50-300 ms while using ~10 ms of CPU (waiting on
 * the disk). For the duration, this connection's automatic checkpoints are off and a second
 * connection in a worker thread checkpoints (PASSIVE: never waits for readers or the writer) after
 * each batch; the setting is restored at the end.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { dialectOf } from '../db/dialect.js';

/** Checkpoints after a batch (`after`), and `close` to stop and restore automatic checkpoints. */
export interface Checkpoints {
  after(): Promise<void>;
  close(): Promise<void>;
}

const NONE: Checkpoints = { after: async () => {}, close: async () => {} };

// CommonJS, as `eval` workers run it; better-sqlite3's path is resolved here so any layout works.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 5000');
parentPort.on('message', (m) => {
  if (m === 'close') { db.close(); parentPort.close(); return; }
  try { db.pragma('wal_checkpoint(PASSIVE)'); parentPort.postMessage(null); } catch (e) { parentPort.postMessage(String(e)); }
});`;

/** Background checkpoints for `db` if it is an SQLite file in WAL mode; otherwise nothing to do. */
export async function backgroundCheckpoints(db: Db): Promise<Checkpoints> {
  if (dialectOf(db) !== 'sqlite') return NONE;
  const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(db);
  const files = await sql<{ name: string; file: string }>`pragma database_list`.execute(db);
  const file = files.rows.find((r) => r.name === 'main')?.file;
  if (mode.rows[0]?.journal_mode !== 'wal' || !file) return NONE;
  const before = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(db);
  const pages = Number(before.rows[0]?.wal_autocheckpoint ?? 1000);
  const worker = new Worker(WORKER, { eval: true, workerData: { file, module: createRequire(import.meta.url).resolve('better-sqlite3') } });
  // Kept referenced: in `kontext cleanup` a checkpoint's answer may be all the event loop waits for.
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  const failed = new Promise<never>((_, reject) => worker.once('error', reject));
  failed.catch(() => {}); // seen by the next after() or close()
  await sql`pragma wal_autocheckpoint = 0`.execute(db);
  return {
    async after() {
      // A failed checkpoint is not a failed cleanup: the next one (or SQLite's own, after close) takes the WAL.
      const answer = new Promise<unknown>((resolve) => worker.once('message', resolve));
      worker.postMessage('checkpoint');
      await Promise.race([answer, failed]).catch(() => undefined);
    },
    async close() {
      await sql.raw(`pragma wal_autocheckpoint = ${pages}`).execute(db);
      worker.postMessage('close');
      await exited;
    },
  };
}
