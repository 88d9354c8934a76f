/**
 * Conditional task-status reads: a finished task's body carries a weak ETag and a matching
 * If-None-Match gets a 304 without a body; the tag changes with whatever the body depends on
 * (the image URLs' base, their signatures); ownership is checked first, so another key's task stays
 * a 404 whatever tag it sends. Unfinished tasks get no tag.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../src/auth/create-api-key.js';
import { UrlSigner } from '../src/auth/url-signer.js';
import { insertImages } from '../src/db/images.js';
import { insertTask } from '../src/db/tasks.js';
import type { TaskStatus } from '../src/db/types.js';
import { taskStatusEtag } from '../src/rest/task-status-etag.js';
import { startStack, until, type Stack } from './helpers/stack.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

let stack: Stack;
let port: number;
beforeAll(async () => {
  // The engine never ticks: the stored tasks stay exactly as written.
  stack = await startStack({ app: { engine: { tickMs: 3_600_000, cleanupIntervalMs: 3_600_000 } } });
  port = Number(new URL(stack.app.url).port);
});
afterAll(async () => {
  await stack.close();
});

/** A GET with any headers, Host included (fetch would not send that one). */
function get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

let n = 0;
/** A task stored as it is, with `images` completed images. */
async function storedTask(status: TaskStatus, images: number, owner: string | null = null): Promise<string> {
  const id = `cond-${++n}-${status}`;
  // Recent, so that the engine's cleanup (TASK_CLEANUP_DAYS) never takes them.
  const at = new Date(Date.now() - 3_600_000 + n * 1000).toISOString();
  await insertTask(stack.app.db, { id, description: 'conditional', status, progress: 100, created_at: at, updated_at: at, count: images, owner_key_id: owner, seq: 7 });
  await insertImages(
    stack.app.db,
    Array.from({ length: images }, (_, idx) => ({
      task_id: id, idx, seed: idx, prompt_id: `${id}-${idx}`, status: 'completed' as const,
      file_path: `images/${id}/${idx}.png`, width: 8, height: 8, bytes: 10, content_type: 'image/png',
    })),
  );
  return id;
}

describe('open mode', () => {
  it('a finished task has a weak ETag; If-None-Match with it gets 304 and no body, a stale one the same 200', async () => {
    for (const status of ['completed', 'failed', 'cancelled'] as const) {
      const id = await storedTask(status, 2);
      const first = await get(`/api/task-status/${id}`);
      expect(first.status).toBe(200);
      const etag = first.headers.etag as string;
      expect(etag).toMatch(/^W\/"[\w-]+"$/);
      expect(first.headers['cache-control']).toBe('private, no-cache');
      expect(first.headers.vary).toBe('Authorization, X-API-Key');
      expect(JSON.parse(first.body)).toMatchObject({ task_id: id, status, images: [0, 1].map((i) => `http://127.0.0.1:${port}/api/image/${id}?index=${i}`) });

      for (const ifNoneMatch of [etag, etag.slice(2), `W/"other", ${etag}`, '*']) {
        const again = await get(`/api/task-status/${id}`, { 'if-none-match': ifNoneMatch });
        expect(again.status).toBe(304);
        expect(again.body).toBe('');
        expect(again.headers.etag).toBe(etag);
        expect(again.headers['cache-control']).toBe('private, no-cache');
      }
      const stale = await get(`/api/task-status/${id}`, { 'if-none-match': 'W/"not-this-one"' });
      expect(stale.status).toBe(200);
      expect(stale.body).toBe(first.body);
    }
  });

  it('an unfinished task has no ETag, and If-None-Match does not change its answer', async () => {
    for (const status of ['pending', 'processing'] as const) {
      const id = await storedTask(status, 0);
      const res = await get(`/api/task-status/${id}`, { 'if-none-match': '*' });
      expect(res.status).toBe(200);
      expect(res.headers.etag).toBeUndefined();
      expect(JSON.parse(res.body)).toMatchObject({ task_id: id, status });
    }
  });

  it('the tag follows the base of the image URLs: another Host gets another tag and a full body', async () => {
    const id = await storedTask('completed', 1);
    const viaIp = await get(`/api/task-status/${id}`, { host: `127.0.0.1:${port}` });
    const viaName = await get(`/api/task-status/${id}`, { host: `localhost:${port}`, 'if-none-match': viaIp.headers.etag as string });
    expect(viaName.status).toBe(200);
    expect(viaName.headers.etag).not.toBe(viaIp.headers.etag);
    expect(JSON.parse(viaName.body)).toMatchObject({ images: [`http://localhost:${port}/api/image/${id}?index=0`] });
  });

  it('a 404 stays a 404 whatever tag is sent, and cancelling answers as before', async () => {
    const missing = await get('/api/task-status/nope', { 'if-none-match': '*' });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toEqual({ detail: 'Task not found' });
    const id = await storedTask('completed', 1);
    const cancel = await fetch(`${stack.app.url}/api/task/${id}/cancel`, { method: 'POST', headers: { 'if-none-match': '*' } });
    expect(cancel.status).toBe(200);
    expect(cancel.headers.get('etag')).toBeNull();
    expect(await cancel.json()).toMatchObject({ task_id: id, status: 'completed' });
  });
});

describe('with API keys', () => {
  it('the owner gets a signed body with its own tag and its 304; another key gets 404 whatever tag it sends', async () => {
    const open = await storedTask('completed', 2);
    const openTag = (await get(`/api/task-status/${open}`)).headers.etag as string;
    const owner = await createApiKey(stack.app.db, { name: 'owner' });
    const other = await createApiKey(stack.app.db, { name: 'other' });
    const admin = await createApiKey(stack.app.db, { name: 'admin', scopes: ['admin'] });
    await until('keys mode', async () => (await get(`/api/task-status/${open}`)).status === 401);
    const id = await storedTask('completed', 2, owner.row.id);
    const as = (key: string, extra: Record<string, string> = {}) => get(`/api/task-status/${id}`, { authorization: `Bearer ${key}`, ...extra });

    const first = await as(owner.key);
    expect(first.status).toBe(200);
    expect((JSON.parse(first.body) as { images: string[] }).images[0]).toMatch(/&exp=\d+&sig=[\w-]{43}$/);
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^W\/"[\w-]+"$/);
    // An admin sees the owner's task (with the same signed URLs); the open-mode tag of another task is no match anywhere.
    expect((await as(owner.key, { 'if-none-match': etag })).status).toBe(304);
    expect((await as(admin.key, { 'if-none-match': openTag })).status).toBe(200);

    for (const ifNoneMatch of [etag, '*']) {
      const refused = await as(other.key, { 'if-none-match': ifNoneMatch });
      expect(refused.status).toBe(404);
      expect(JSON.parse(refused.body)).toEqual({ detail: 'Task not found' });
      expect(refused.headers.etag).toBeUndefined();
      expect((await get(`/api/task-status/${id}`, { 'if-none-match': ifNoneMatch })).status).toBe(401);
    }
  });
});

describe('taskStatusEtag', () => {
  const task = { id: 't1', status: 'completed' as const, seq: 3, updated_at: '2026-01-01T00:00:00.000Z' };
  const signer = new UrlSigner(randomBytes(32), 600);
  // Just past a step of the signing window (5 minutes): the next second signs the same expiry.
  const now = Date.UTC(2026, 0, 1, 12, 0, 1);

  it('changes with the task, the base URL and the signing window, and only with them', () => {
    const tag = taskStatusEtag(task, 'http://a', signer, now);
    expect(taskStatusEtag(task, 'http://a', signer, now + 1000)).toBe(tag); // the same window: the same signed URLs
    expect(taskStatusEtag(task, 'http://a', signer, now + 10 * 60_000)).not.toBe(tag);
    expect(taskStatusEtag(task, 'http://b', signer, now)).not.toBe(tag);
    expect(taskStatusEtag(task, 'http://a', undefined, now)).not.toBe(tag);
    expect(taskStatusEtag(task, 'http://a', new UrlSigner(randomBytes(32), 600), now)).not.toBe(tag);
    expect(taskStatusEtag({ ...task, seq: 4 }, 'http://a', signer, now)).not.toBe(tag);
    expect(taskStatusEtag({ ...task, status: 'failed' }, 'http://a', signer, now)).not.toBe(tag);
    // Unsigned URLs do not expire: neither does their tag.
    expect(taskStatusEtag(task, 'http://a', undefined, now + 86_400_000)).toBe(taskStatusEtag(task, 'http://a', undefined, now));
  });
});
