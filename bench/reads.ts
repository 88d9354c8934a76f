/**
 * Reads over 1000 stored tasks (bench/stored-tasks.ts: 1-4 finished images each):
 * `GET /api/task-status/{id}` (cycling through every id) and `tasks(first: 50) { ... images { url } }`,
 * in requests per second with autocannon (bench/request-rate.ts), and the SQL queries one request
 * costs (counted with the app's `onQuery` hook).
 *
 * The baseline is a bare `node:http` server reading the same rows with better-sqlite3 prepared
 * statements from the same database file and replying with JSON of the same shape. Both servers
 * run on this process's main thread; autocannon runs in a worker thread, so the load generator
 * does not take the servers' event loop. The runs alternate (service, bare, service, bare).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type autocannon from 'autocannon';
import BetterSqlite3 from 'better-sqlite3';
import { openDatabase } from '../src/db/database.js';
import type { ImageRow, TaskRow } from '../src/db/types.js';
import { requestRate } from './request-rate.js';
import { seedStoredTasks, startReader } from './stored-tasks.js';
import type { BenchRow } from './table.js';

const TASKS = 1000;
const CONNECTIONS = 10;
const DURATION_S = 5;
const WARMUP_S = 1;
const PAGE = 50;

const listQuery = (first: number) => `{ tasks(first: ${first}) { edges { node { id status progress description createdAt images { url } } } pageInfo { hasNextPage endCursor } } }`;

/** The baseline: the same reads with prepared statements, the same JSON shapes, nothing else. */
async function startBareServer(file: string): Promise<{ url: string; close(): Promise<void> }> {
  const sqlite = new BetterSqlite3(file, { readonly: true });
  const task = sqlite.prepare<[string], TaskRow>('select * from tasks where id = ?');
  const imagesOf = sqlite.prepare<[string], ImageRow>('select * from images where task_id = ? order by idx');
  const page = sqlite.prepare<[number], TaskRow>('select * from tasks order by created_at desc, id desc limit ?');
  const pageImages = new Map<number, BetterSqlite3.Statement<string[], ImageRow>>();
  const imagesOfMany = (ids: string[]): ImageRow[] => {
    let stmt = pageImages.get(ids.length);
    if (!stmt) {
      stmt = sqlite.prepare<string[], ImageRow>(`select * from images where task_id in (${ids.map(() => '?').join(',')}) order by task_id, idx`);
      pageImages.set(ids.length, stmt);
    }
    return stmt.all(...ids);
  };
  const reply = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const server: Server = createServer((req, res) => {
    const status = /^\/api\/task-status\/([^/?]+)$/.exec(req.url ?? '');
    if (req.method === 'GET' && status) {
      const row = task.get(decodeURIComponent(status[1]!));
      if (!row) return reply(res, 404, { detail: 'Task not found' });
      const base = `http://${req.headers.host ?? 'localhost'}`;
      return reply(res, 200, {
        task_id: row.id,
        status: row.status,
        progress: row.progress,
        description: row.description,
        count: row.count,
        size: row.size,
        steps: row.steps,
        guidance: row.guidance,
        seed: row.base_seed,
        images: imagesOf.all(row.id).filter((i) => i.status === 'completed').map((i) => `${base}/api/image/${encodeURIComponent(row.id)}?index=${i.idx}`),
        result_path: row.result_path ? (JSON.parse(row.result_path) as string[]) : [],
        error_message: row.error_message,
        queue_position: null,
        created_at: row.created_at,
        updated_at: row.updated_at,
      });
    }
    if (req.method === 'POST' && req.url === '/graphql') {
      // Drain the query (always the same page of PAGE tasks here), then answer it by hand.
      req.resume();
      req.on('end', () => {
        const rows = page.all(PAGE + 1);
        const nodes = rows.slice(0, PAGE);
        const byTask = new Map<string, ImageRow[]>(nodes.map((t) => [t.id, []]));
        for (const image of imagesOfMany(nodes.map((t) => t.id))) byTask.get(image.task_id)?.push(image);
        reply(res, 200, {
          data: {
            tasks: {
              edges: nodes.map((t) => ({
                node: {
                  id: t.id,
                  status: t.status.toUpperCase(),
                  progress: t.progress,
                  description: t.description,
                  createdAt: t.created_at,
                  images: (byTask.get(t.id) ?? []).filter((i) => i.status === 'completed').map((i) => ({ url: `/api/image/${encodeURIComponent(t.id)}?index=${i.idx}` })),
                },
              })),
              pageInfo: { hasNextPage: rows.length > PAGE, endCursor: nodes.at(-1)?.id ?? null },
            },
          },
        });
      });
      return;
    }
    reply(res, 404, { detail: 'Not Found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      sqlite.close();
    },
  };
}

/** The read rows: task status and a tasks page, requests per second against the bare server. */
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
      const queriesOf = async (send: () => Promise<Response>): Promise<number> => {
        queries = 0;
        const res = await send();
        if (res.status !== 200) throw new Error(`reads: HTTP ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
        return queries;
      };
      const gqlPost = (first: number) => () =>
        fetch(`${app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: listQuery(first) }) });
      const statusQueries = await queriesOf(() => fetch(`${app.url}/api/task-status/${ids[500]}`));
      const listQueries = await queriesOf(gqlPost(PAGE));
      const smallListQueries = await queriesOf(gqlPost(5));

      const statusRequests: autocannon.Request[] = ids.map((id) => ({ method: 'GET', path: `/api/task-status/${id}` }));
      const listRequests: autocannon.Request[] = [
        { method: 'POST', path: '/graphql', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: listQuery(PAGE) }) },
      ];
      const rate = { connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S };
      const statusService = await requestRate(app.url, statusRequests, rate);
      const statusBare = await requestRate(bare.url, statusRequests, rate);
      const listService = await requestRate(app.url, listRequests, rate);
      const listBare = await requestRate(bare.url, listRequests, rate);

      const rps = (x: number) => `${x.toFixed(0)} req/s`;
      const setup = `${TASKS} stored tasks, autocannon ${CONNECTIONS} connections x ${DURATION_S} s`;
      return [
        {
          name: `Reads: GET /api/task-status/{id}, every id in turn (${setup})`,
          figure: `${rps(statusService)}, ${statusQueries} SQL queries per request`,
          baseline: `${rps(statusBare)} bare node:http + better-sqlite3, the same 2 reads (task, its images) as prepared statements`,
          ratio: statusService / statusBare,
          ratioLabel: 'of the baseline',
          note: 'one core: the router, Kysely building and compiling each query, JSON; the queries themselves are index lookups',
        },
        {
          name: `Reads: tasks(first: ${PAGE}) { ... images { url } } (${setup})`,
          figure: `${rps(listService)}, ${listQueries} SQL queries per request (${smallListQueries} for first: 5)`,
          baseline: `${rps(listBare)} bare node:http + better-sqlite3, the same 2 reads (a page of tasks, their images) and JSON`,
          ratio: listService / listBare,
          ratioLabel: 'of the baseline',
          note: 'one core: Yoga parses and validates each request and resolves ~50 tasks and ~125 images field by field (DataLoader keeps the images to one query); the page itself is an index walk (tasks_newest) on both sides',
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
