/**
 * Start-up as the queue grows: the service as a child process over a database with 10 000 pending
 * tasks (3 images each) vs one with none, in alternating rounds: the time from spawn to the first
 * `/ready` 200 and the resident memory then. One simulator (slow steps) is the ComfyUI for both. The
 * service runs as `npm start` runs it: the bundle in dist/ under plain Node.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import BetterSqlite3 from 'better-sqlite3';
import { startSimulator } from '../simulator/server.js';
import { openDatabase } from '../src/db/database.js';
import { makeImage } from '../test/helpers/images.js';
import { buildService } from '../scripts/build-service.mjs';
import { startBuiltServiceProcess } from '../test/helpers/processes.js';
import { median } from './alternating.js';
import { insertBulkTasks } from './bulk-tasks.js';
import { processMemory } from './process-memory.js';
import type { BenchRow } from './table.js';

const PENDING = 10_000;
const ROUNDS = 4;

/** A data folder with `pending` queued tasks editing one stored upload. */
async function queuedData(dir: string, pending: number): Promise<string> {
  const dataDir = join(dir, `data-${pending}`);
  const file = join(dataDir, 'kontext.db');
  await (await openDatabase({ file })).destroy();
  const png = await makeImage('png', 64, 48);
  const sha = createHash('sha256').update(png).digest('hex');
  await mkdir(join(dataDir, 'uploads'), { recursive: true });
  await writeFile(join(dataDir, 'uploads', `${sha}.png`), png);
  const sqlite = new BetterSqlite3(file);
  sqlite.prepare('insert into uploads (sha256, file_path, bytes, content_type, width, height, created_at) values (?, ?, ?, ?, ?, ?, ?)').run(sha, `uploads/${sha}.png`, png.length, 'image/png', 64, 48, new Date().toISOString());
  sqlite.close();
  if (pending > 0) insertBulkTasks(file, { count: pending, status: 'pending', uploadSha256: sha });
  return dataDir;
}

/** One start: spawn to the first /ready 200, the service's own split of it (its 'listening' line), and its RSS then. */
interface Start {
  ms: number;
  /** Node and every module, until main() ran. */
  loadedMs: number;
  /** startApp: migrations, stores, recovery, workers, the first scheduling pass, until accepting. */
  startMs: number;
  rss: number;
}

/** Spawns the service over `dataDir` and measures its start. */
async function startOnce(bundle: string, dataDir: string, comfyui: string): Promise<Start> {
  const started = performance.now();
  const child = await startBuiltServiceProcess(bundle, { DATA_DIR: dataDir, COMFYUI_URL: comfyui, NODE_ENV: 'production' });
  try {
    for (;;) {
      const res = await fetch(`${child.url}/ready`);
      await res.arrayBuffer();
      if (res.status === 200) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const ms = performance.now() - started;
    const timing = /"loaded_ms":(\d+),"start_ms":(\d+)/.exec(child.output());
    if (!timing) throw new Error(`no start timing in the service's output:\n${child.output()}`);
    return { ms, loadedMs: Number(timing[1]), startMs: Number(timing[2]), rss: (await processMemory(child.process.pid!)).rss };
  } finally {
    await child.kill('SIGTERM');
  }
}

/** The start-up row: spawn to /ready with 10 000 pending tasks vs none, and the RSS difference. */
export async function benchGrowthStartup(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-growth-startup-'));
  const sim = await startSimulator({ port: 0, stepMs: 5_000, baseDir: join(dir, 'comfyui') });
  await buildService();
  const bundle = fileURLToPath(new URL('../dist/main.js', import.meta.url));
  try {
    const empty = await queuedData(dir, 0);
    const queued = await queuedData(dir, PENDING);
    const withQueue: Start[] = [];
    const without: Start[] = [];
    // The pending tasks stay pending (the run is killed long before a 100 s task finishes), so every round starts from the same queue.
    for (let round = 0; round < ROUNDS; round++) {
      if (round % 2 === 0) {
        withQueue.push(await startOnce(bundle, queued, sim.url));
        without.push(await startOnce(bundle, empty, sim.url));
      } else {
        without.push(await startOnce(bundle, empty, sim.url));
        withQueue.push(await startOnce(bundle, queued, sim.url));
      }
    }
    const ms = median(withQueue.map((r) => r.ms));
    const baseMs = median(without.map((r) => r.ms));
    const startMs = median(withQueue.map((r) => r.startMs));
    const baseStartMs = median(without.map((r) => r.startMs));
    const loadedMs = median(withQueue.map((r) => r.loadedMs));
    const rss = median(withQueue.map((r) => r.rss));
    const baseRss = median(without.map((r) => r.rss));
    const mb = (b: number) => `${(b / 1_048_576).toFixed(0)} MB`;
    return [
      {
        name: `Growth: start-up with ${PENDING.toLocaleString('en')} pending tasks (the service as npm start runs it, bundled, under plain Node: spawn to the first /ready 200; ${ROUNDS} alternating rounds, medians)`,
        figure: `${(ms / 1000).toFixed(2)} s, of which loading the code ${(loadedMs / 1000).toFixed(2)} s and the service's own start ${startMs.toFixed(0)} ms; RSS ${mb(rss)} at ready (+${mb(rss - baseRss)}); per round ${withQueue.map((r) => (r.ms / 1000).toFixed(2)).join(', ')} s`,
        baseline: `${(baseMs / 1000).toFixed(2)} s, own start ${baseStartMs.toFixed(0)} ms, RSS ${mb(baseRss)} with no pending task`,
        ratio: ms / baseMs,
        ratioLabel: 'of the start-up time with none (goal: < 2 s and < +50 MB)',
        note: "most of either is loading the code (Node, the bundle, graphql-yoga, kysely, ... from node_modules; the AWS SDK only loads for s3:// storage), the same with or without a queue; the service's own start (the 'listening' log line's start_ms) reads no pending row (recovery takes processing tasks only), then the first pass claims by owner heads and writes up to 500 positions in one transaction; RSS: the kept fair order (10 000 ids)",
      },
    ];
  } finally {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  }
}
