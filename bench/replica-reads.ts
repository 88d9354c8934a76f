/**
 * Task-status reads on PostgreSQL vs SQLite: `GET /api/task-status/{id}` over 1000 stored tasks
 * (every id in turn), requests per second with autocannon, the service in this process on each
 * database in turn. The runs alternate (PostgreSQL, SQLite, PostgreSQL, SQLite) and each figure is
 * the mean of its two, so neither side gets the warmer machine.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type autocannon from 'autocannon';
import type { App } from '../src/app.js';
import { openDatabase } from '../src/db/database.js';
import { createTestDatabase, urlOf } from './replica-servers.js';
import { requestRate } from './request-rate.js';
import { seedStoredTasks, startReader } from './stored-tasks.js';
import type { BenchRow } from './table.js';

const TASKS = 1000;
const CONNECTIONS = 10;
const DURATION_S = 5;
const ROUNDS = 2;

/** The reads row: task-status requests per second on PostgreSQL, SQLite as the baseline. */
export async function benchReplicaReads(): Promise<BenchRow> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-replica-reads-'));
  const database = await createTestDatabase('postgres');
  const apps: App[] = [];
  try {
    const dataDir = join(dir, 'data');
    const sqlite = await openDatabase({ file: join(dataDir, 'kontext.db') });
    const ids = await seedStoredTasks(sqlite, TASKS);
    await sqlite.destroy();
    // Tasks of the same shape in PostgreSQL (ids of their own).
    const postgres = await database.open();
    const pgIds = await seedStoredTasks(postgres, TASKS);
    await postgres.destroy();

    // Per app, and the fewest of a few requests: a query of the other app, or of this one's engine
    // passing once after its start, is not the request's.
    const seen: { sqlite?: string[]; postgres?: string[] } = {};
    const onSqlite = await startReader({ dataDir }, (e) => void seen.sqlite?.push(e.query.sql));
    apps.push(onSqlite);
    const onPostgres = await startReader({ dataDir: join(dir, 'pg-data'), databaseUrl: urlOf(database.target) }, (e) => void seen.postgres?.push(e.query.sql));
    apps.push(onPostgres);
    const queriesPerStatus = async (app: App, which: keyof typeof seen, list: string[]): Promise<number> => {
      let fewest = Number.POSITIVE_INFINITY;
      for (const id of list.slice(0, 5)) {
        const mine: string[] = (seen[which] = []);
        const res = await fetch(`${app.url}/api/task-status/${id}`);
        if (res.status !== 200) throw new Error(`reads: HTTP ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
        fewest = Math.min(fewest, mine.length);
      }
      delete seen[which];
      return fewest;
    };
    const sqliteQueries = await queriesPerStatus(onSqlite, 'sqlite', ids);
    const pgQueries = await queriesPerStatus(onPostgres, 'postgres', pgIds);

    const requestsOf = (list: string[]): autocannon.Request[] => list.map((id) => ({ method: 'GET', path: `/api/task-status/${id}` }));
    const options = { connections: CONNECTIONS, durationS: DURATION_S };
    let pgTotal = 0;
    let sqliteTotal = 0;
    for (let round = 0; round < ROUNDS; round++) {
      pgTotal += await requestRate(onPostgres.url, requestsOf(pgIds), options);
      sqliteTotal += await requestRate(onSqlite.url, requestsOf(ids), options);
    }
    const pg = pgTotal / ROUNDS;
    const lite = sqliteTotal / ROUNDS;
    const rps = (x: number) => `${x.toFixed(0)} req/s`;
    return {
      name: `Reads: GET /api/task-status/{id} on PostgreSQL, every id in turn (${TASKS} stored tasks, autocannon ${CONNECTIONS} connections x ${DURATION_S} s, mean of ${ROUNDS} alternating runs)`,
      figure: `${rps(pg)}, ${pgQueries} SQL queries per request`,
      baseline: `${rps(lite)} on SQLite, ${sqliteQueries} SQL queries per request`,
      ratio: pg / lite,
      ratioLabel: 'of SQLite',
      note: 'one core for the service: on PostgreSQL each query is a round trip over loopback TCP to another process (pool of 10 connections) with its own parse and plan, on SQLite a call into the same process; the rest (router, Kysely, JSON) is the same',
    };
  } finally {
    for (const app of apps) await app.close();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  }
}
