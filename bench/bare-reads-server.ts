/**
 * The read benchmarks' baseline: a bare `node:http` server reading the same rows with
 * better-sqlite3 prepared statements (its default object rows) from the same database file and
 * replying with JSON of the same shapes, nothing else.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import BetterSqlite3 from 'better-sqlite3';
import type { ImageRow, TaskRow } from '../src/db/types.js';

/** Tasks in the page the bare server answers every POST /graphql with. */
export const BARE_PAGE = 50;

/** The baseline: the same reads with prepared statements, the same JSON shapes, nothing else. */
export async function startBareServer(file: string): Promise<{ url: string; close(): Promise<void> }> {
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
      // Drain the query (always the same page of BARE_PAGE tasks here), then answer it by hand.
      req.resume();
      req.on('end', () => {
        const rows = page.all(BARE_PAGE + 1);
        const nodes = rows.slice(0, BARE_PAGE);
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
              pageInfo: { hasNextPage: rows.length > BARE_PAGE, endCursor: nodes.at(-1)?.id ?? null },
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
