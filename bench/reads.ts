/**
 * Reads over 1000 stored tasks (bench/stored-tasks.ts: 1-4 finished images each):
 * `GET /api/task-status/{id}` (cycling through every id), the same with the `If-None-Match` of
 * each task's ETag (a poller asking again), and `tasks(first: 50) { ... images { url } }`, in
 * requests per second with autocannon (bench/request-rate.ts), and the SQL queries one request
 * costs (counted with the app's `onQuery` hook).
 *
 * The baseline is a bare `node:http` server (bench/bare-reads-server.ts) reading the same rows with
 * better-sqlite3 prepared statements from the same database file and replying with JSON of the same
 * shape. Both servers run on this process's main thread; autocannon runs in a worker thread, so the
 * load generator does not take the servers' event loop. The machine is shared and its load moves
 * within seconds: each figure is measured in ROUNDS short runs, service and bare one after the
 * other in alternating order; the figures are the means, the ratio is the median of the per-round
 * ratios (a burst of load on the machine spoils one round, not the row), and the rows give their
 * spread.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type autocannon from 'autocannon';
import { openDatabase } from '../src/db/database.js';
import { alternate, type Alternated } from './alternating.js';
import { startBareServer } from './bare-reads-server.js';
import { requestRate, type RateOptions } from './request-rate.js';
import { seedStoredTasks, startReader } from './stored-tasks.js';
import type { BenchRow } from './table.js';

const TASKS = 1000;
const CONNECTIONS = 10;
const ROUNDS = 6;
const ROUND_S = 1.5;
const WARMUP_S = 0.5;
const PAGE = 50;

const listQuery = (first: number) => `{ tasks(first: ${first}) { edges { node { id status progress description createdAt images { url } } } pageInfo { hasNextPage endCursor } } }`;

/** The read rows: task status (plain and conditional) and a tasks page, requests per second against the bare server. */
export async function benchReads(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-reads-'));
  const dataDir = join(dir, 'data');
  const file = join(dataDir, 'kontext.db');
  try {
    const seeding = await openDatabase({ file });
    const ids = await seedStoredTasks(seeding, TASKS);
    await seeding.destroy();

    let queries = 0;
    const app = await startReader({ dataDir }, () => void queries++);
    const bare = await startBareServer(file);
    try {
      const queriesOf = async (send: () => Promise<Response>, status = 200): Promise<number> => {
        queries = 0;
        const res = await send();
        if (res.status !== status) throw new Error(`reads: HTTP ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
        return queries;
      };
      const gqlPost = (first: number) => () =>
        fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: listQuery(first) }) });
      const statusQueries = await queriesOf(() => fetch(`${app.url}/api/task-status/${ids[500]}`));
      const listQueries = await queriesOf(gqlPost(PAGE));
      const smallListQueries = await queriesOf(gqlPost(5));
      // Every task's tag, as a poller that asked once holds it.
      const etags = new Map<string, string>();
      for (const id of ids) etags.set(id, (await fetch(`${app.url}/api/task-status/${id}`).then(async (r) => (await r.arrayBuffer(), r.headers.get('etag'))))!);
      const conditionalQueries = await queriesOf(() => fetch(`${app.url}/api/task-status/${ids[500]}`, { headers: { 'if-none-match': etags.get(ids[500]!)! } }), 304);

      const statusRequests: autocannon.Request[] = ids.map((id) => ({ method: 'GET', path: `/api/task-status/${id}` }));
      const conditionalRequests: autocannon.Request[] = ids.map((id) => ({ method: 'GET', path: `/api/task-status/${id}`, headers: { 'if-none-match': etags.get(id)! } }));
      const listRequests: autocannon.Request[] = [
        { method: 'POST', path: '/graphql', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: listQuery(PAGE) }) },
      ];
      const rate = (warm: boolean, status?: number): RateOptions => ({ connections: CONNECTIONS, durationS: ROUND_S, warmupS: warm ? 0 : WARMUP_S, ...(status ? { status } : {}) });
      // a: the service, b: the bare baseline.
      const status = await alternate((w) => requestRate(app.url, statusRequests, rate(w)), (w) => requestRate(bare.url, statusRequests, rate(w)), ROUNDS);
      const conditional = await alternate((w) => requestRate(app.url, conditionalRequests, rate(w, 304)), (w) => requestRate(bare.url, statusRequests, rate(w)), ROUNDS);
      const list = await alternate((w) => requestRate(app.url, listRequests, rate(w)), (w) => requestRate(bare.url, listRequests, rate(w)), ROUNDS);

      const rps = (x: number) => `${x.toFixed(0)} req/s`;
      const spread = (s: Alternated) => `ratio per round ${s.spread[0].toFixed(2)}-${s.spread[1].toFixed(2)}`;
      const setup = `${TASKS} stored tasks, autocannon ${CONNECTIONS} connections, ${ROUNDS} alternating rounds of ${ROUND_S} s`;
      return [
        {
          name: `Reads: GET /api/task-status/{id}, every id in turn (${setup})`,
          figure: `${rps(status.a)}, ${statusQueries} SQL queries per request (${spread(status)})`,
          baseline: `${rps(status.b)} bare node:http + better-sqlite3, the same 2 reads (task, its images) as prepared statements`,
          ratio: status.ratio,
          ratioLabel: 'of the baseline (median round)',
          note: 'one core: statements prepared once and kept, rows built from arrays (better-sqlite3 object rows, which the baseline uses, cost more than the index lookups), the two reads compiled once and run beside Kysely\'s executor; the same HTTP write (writev), the two lookups and JSON as the baseline take most of it; left beyond the baseline: the ETag and its headers, the router, auth, the per-request metric and their promises and garbage (main-thread CPU ~1.2x the baseline\'s per request); autocannon shares the second core and does not always keep the service busy',
        },
        {
          name: `Reads: GET /api/task-status/{id} with If-None-Match of a finished task (${setup})`,
          figure: `${rps(conditional.a)} 304s, ${conditionalQueries} SQL query per request (${spread(conditional)})`,
          baseline: `${rps(conditional.b)} bare node:http + better-sqlite3 answering 200 with the 2 reads`,
          ratio: conditional.ratio,
          ratioLabel: 'of the baseline (median round)',
          note: 'the ownership check reads the task row, then the tag (task state, URL base, signing window) is compared: no images read, no body; a poller of a finished task costs less than the bare full read',
        },
        {
          name: `Reads: tasks(first: ${PAGE}) { ... images { url } } (${setup})`,
          figure: `${rps(list.a)}, ${listQueries} SQL queries per request (${smallListQueries} for first: 5; ${spread(list)})`,
          baseline: `${rps(list.b)} bare node:http + better-sqlite3, the same 2 reads (a page of tasks, their images) and JSON`,
          ratio: list.ratio,
          ratioLabel: 'of the baseline (median round)',
          note: `one core: Yoga's request and response (Fetch API objects, body streams) and graphql-js resolving ~50 tasks and ~125 images field by field (${process.env.NODE_ENV === 'production' ? 'NODE_ENV=production' : 'with graphql-js development-mode type checks: NODE_ENV is not production'}), and their garbage; the page's images are read with the page (one query) so each task completes without a promise; the SQL is an index walk (tasks_newest), its rows built from arrays`,
        },
      ];
    } finally {
      await bare.close();
      await app.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
