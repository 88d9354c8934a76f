/**
 * `GET /api/image/{task_id}?index=0`: a finished image's bytes. Images never change once stored,
 * so they carry an ETag and long cache headers; `Range` requests are honoured. The bytes stream
 * from the BlobStore (DATA_DIR, a shared folder or S3), whichever replica stored them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Caller } from '../auth/caller.js';
import type { TaskService } from '../tasks/task-service.js';
import { sendDetail, sendFieldErrors } from './respond.js';

export async function handleImage(req: IncomingMessage, res: ServerResponse, taskId: string, query: URLSearchParams, service: TaskService, caller: Caller): Promise<void> {
  const raw = query.get('index') ?? '0';
  if (!/^\d{1,3}$/.test(raw)) {
    return sendFieldErrors(res, [{ loc: ['query', 'index'], msg: 'Input should be a valid integer from 0 to 3', type: 'int_parsing' }]);
  }
  const index = Number(raw);
  const found = await service.imageFile(taskId, index, caller);
  if (!found) {
    // Only a miss pays for telling a missing task from a missing image.
    if (!(await service.getTask(taskId, caller))) return sendDetail(res, 404, 'Task not found');
    return sendDetail(res, 404, `Image ${index} of this task does not exist (yet)`);
  }
  const missing = () => sendDetail(res, 404, `Image ${index} of this task is missing from storage`);
  // A recorded path no store accepts as a key (a hand-edited row) cannot have been stored.
  const stat = await service.store.stat(found.key).catch((err: unknown) => (isBadKey(err) ? undefined : Promise.reject(err)));
  if (!stat) return missing();
  const size = stat.size;
  // From the prompt id and size, not the store's own ETag: the same on every replica and every store.
  const etag = `"${found.image.prompt_id}-${size}"`;
  const headers: Record<string, string | number> = {
    'content-type': found.image.content_type ?? 'application/octet-stream',
    etag,
    'cache-control': 'public, max-age=31536000, immutable',
    'accept-ranges': 'bytes',
  };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const range = parseRange(req.headers.range, size);
  if (range === 'invalid') {
    res.writeHead(416, { 'content-range': `bytes */${size}`, 'content-type': 'application/json' });
    res.end(JSON.stringify({ detail: 'Range not satisfiable' }));
    return;
  }
  const [start, end] = range ?? [0, size - 1];
  let body: Readable | undefined;
  if (req.method !== 'HEAD') {
    // Opened before the head is sent, so an object deleted since the stat still gets its 404.
    body = await service.store.get(found.key, range ? { range: { start, end } } : {});
    if (!body) return missing();
  }
  res.writeHead(range ? 206 : 200, {
    ...headers,
    'content-length': end - start + 1,
    ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
  });
  if (!body) return void res.end();
  await pipeline(body, res);
}

function isBadKey(err: unknown): boolean {
  return err instanceof TypeError && err.message.startsWith('invalid storage key');
}

/** One `bytes=` range, clamped to the file; undefined for none or one we ignore (several ranges). */
function parseRange(header: string | undefined, size: number): [number, number] | 'invalid' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a, b] = m;
  let start: number;
  let end: number;
  if (a === '') {
    if (b === '') return 'invalid';
    start = Math.max(0, size - Number(b));
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return [start, end];
}
