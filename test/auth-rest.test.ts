/**
 * API keys on the REST routes, over real HTTP: open until the first key, then 401 without a valid
 * key, 403 without the scope, another key's task as missing, admin keys see all, refusals store
 * nothing, and limits answer 429 with Retry-After.
 */
import { request } from 'node:http';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, type NewKeyOptions } from '../src/auth/create-api-key.js';
import { revokeApiKey } from '../src/db/api-keys.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, type Stack, type TaskStatusBody } from './helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  // 100 ms a step: a 1-step task ends at once, a 40-step one stays busy while a test looks at it.
  stack = await startStack({ sim: { stepMs: 100 } });
});
afterAll(async () => {
  await stack.close();
});

type Headers = Record<string, string>;
const bearer = (key: string): Headers => ({ authorization: `Bearer ${key}` });
const QUICK = { description: 'make it night', steps: '1', size: '256x256' };
const SLOW = { ...QUICK, steps: '40' };

/** POST /generate-image with `headers`; `colour` makes a reference image no other request sent. */
async function generate(headers: Headers, fields: Record<string, string> = QUICK, colour = { r: 10, g: 20, b: 30 }): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  const png = await makeImage('png', 320, 240, colour);
  form.set('referenceImage', new Blob([png as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'ref.png');
  return fetch(`${stack.app.url}/generate-image`, { method: 'POST', body: form, headers });
}

async function created(res: Response): Promise<string> {
  expect(res.status).toBe(200);
  return ((await res.json()) as TaskStatusBody).task_id;
}

const status = (id: string, headers: Headers = {}) => fetch(`${stack.app.url}/api/task-status/${id}`, { headers });
const cancel = (id: string, headers: Headers = {}) => fetch(`${stack.app.url}/api/task/${id}/cancel`, { method: 'POST', headers });
const image = (id: string, headers: Headers = {}) => fetch(`${stack.app.url}/api/image/${id}?index=0`, { headers });

async function waitFor(id: string, headers: Headers, statuses: string[]): Promise<TaskStatusBody> {
  let body: TaskStatusBody | undefined;
  await until(`task ${id} in ${statuses.join('|')}`, async () => {
    body = (await (await status(id, headers)).json()) as TaskStatusBody;
    return statuses.includes(body.status);
  });
  return body!;
}

async function health(): Promise<{ auth: string }> {
  return (await (await fetch(`${stack.app.url}/health`)).json()) as { auth: string };
}

/** Upload rows, stored upload files and part files: what a refused request must not add to. */
async function storedUploads(): Promise<{ rows: number; files: string[]; parts: string[] }> {
  const rows = (await stack.app.db.selectFrom('uploads').select('sha256').execute()).length;
  const files = await readdir(join(stack.config.dataDir, 'uploads')).catch(() => []);
  const parts = await readdir(join(stack.config.dataDir, 'tmp')).catch(() => []);
  return { rows, files: files.sort(), parts };
}

async function key(options: NewKeyOptions): Promise<string> {
  return (await createApiKey(stack.app.db, options)).key;
}

let openTask: string;

describe('open mode: no key in the database', () => {
  it('works as before without a key, and /health says auth "open"', async () => {
    expect(await health()).toMatchObject({ auth: 'open' });
    openTask = await created(await generate({}));
    const done = await waitFor(openTask, {}, ['completed']);
    expect(done.images).toEqual([`${stack.app.url}/api/image/${openTask}?index=0`]); // unsigned, as before
    const img = await image(openTask);
    expect(img.status).toBe(200);
    expect(img.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    // A key sent while open is not looked at.
    expect((await status(openTask, bearer('kx_whatever'))).status).toBe(200);
  });
});

describe('once a key exists', () => {
  const keys: Record<'a' | 'b' | 'reader' | 'generator' | 'admin', string> = { a: '', b: '', reader: '', generator: '', admin: '' };
  let taskOfA: string;
  beforeAll(async () => {
    keys.a = await key({ name: 'a' });
    keys.b = await key({ name: 'b' });
    keys.reader = await key({ name: 'reader', scopes: ['read'] });
    keys.generator = await key({ name: 'generator', scopes: ['generate'] });
    keys.admin = await key({ name: 'admin', scopes: ['admin'] });
    // The Authenticator trusts "open" for its cache time (2 s): the switch shows within it.
    await until('auth keys', async () => (await health()).auth === 'keys');
    taskOfA = await created(await generate(bearer(keys.a)));
    await waitFor(taskOfA, bearer(keys.a), ['completed']);
  });

  it('no key: 401 with WWW-Authenticate: Bearer on every protected route', async () => {
    for (const res of [await status(taskOfA), await cancel(taskOfA), await generate({}), await image(taskOfA)]) {
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
      expect(((await res.json()) as { detail: string }).detail).toMatch(/API key/);
    }
  });

  it('a wrong key, a malformed Authorization header and a key in a wrong scheme are 401', async () => {
    const wrong = await status(taskOfA, bearer('kx_' + 'A'.repeat(43)));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
    expect(await wrong.json()).toEqual({ detail: 'The API key is not valid' });
    expect((await status(taskOfA, { authorization: `Basic ${keys.a}` })).status).toBe(401);
    expect((await status(taskOfA, { authorization: 'Bearer' })).status).toBe(401);
    expect((await status(taskOfA, { 'x-api-key': 'kx_nope' })).status).toBe(401);
  });

  it('X-API-Key works like Authorization: Bearer', async () => {
    const res = await status(taskOfA, { 'x-api-key': keys.a });
    expect(res.status).toBe(200);
    expect(((await res.json()) as TaskStatusBody).task_id).toBe(taskOfA);
    expect((await created(await generate({ 'x-api-key': keys.a })))).toMatch(/\S/);
  });

  it('a key without the scope gets 403 naming it', async () => {
    const post = await generate(bearer(keys.reader));
    expect(post.status).toBe(403);
    expect(await post.json()).toEqual({ detail: "This API key lacks the 'generate' scope" });
    expect((await cancel(taskOfA, bearer(keys.reader))).status).toBe(403);
    const read = await status(taskOfA, bearer(keys.generator));
    expect(read.status).toBe(403);
    expect(await read.json()).toEqual({ detail: "This API key lacks the 'read' scope" });
    expect((await image(taskOfA, bearer(keys.generator))).status).toBe(403);
  });

  it("another key's task is 404 on status, cancel and image, like a task that does not exist", async () => {
    const busy = await created(await generate(bearer(keys.a), SLOW, { r: 1, g: 2, b: 3 }));
    for (const id of [taskOfA, busy]) {
      for (const res of [await status(id, bearer(keys.b)), await cancel(id, bearer(keys.b))]) {
        expect(res.status).toBe(404);
        expect(await res.json()).toEqual({ detail: 'Task not found' });
      }
    }
    const img = await image(taskOfA, bearer(keys.b));
    expect(img.status).toBe(404);
    expect(await img.json()).toEqual({ detail: 'Task not found' });
    expect(await (await status('no-such-task', bearer(keys.b))).json()).toEqual({ detail: 'Task not found' });
    // B's cancel did nothing; A's own cancel works.
    expect(['pending', 'processing']).toContain(((await (await status(busy, bearer(keys.a))).json()) as TaskStatusBody).status);
    const own = await cancel(busy, bearer(keys.a));
    expect(own.status).toBe(200);
    await waitFor(busy, bearer(keys.a), ['cancelled']);
    // The key's own image, with its key: private caching only.
    const mine = await image(taskOfA, bearer(keys.a));
    expect(mine.status).toBe(200);
    expect(mine.headers.get('cache-control')).toMatch(/^private\b/);
  });

  it('an admin key sees every task, including those made while the service was open', async () => {
    expect((await status(taskOfA, bearer(keys.admin))).status).toBe(200);
    expect((await status(openTask, bearer(keys.admin))).status).toBe(200);
    expect((await image(openTask, bearer(keys.admin))).status).toBe(200);
    // Ownerless tasks are for admins only.
    expect((await status(openTask, bearer(keys.a))).status).toBe(404);
    expect((await image(openTask, bearer(keys.a))).status).toBe(404);
  });

  it('/health, /ready, /docs and /openapi.json stay public', async () => {
    expect(await health()).toMatchObject({ auth: 'keys' });
    for (const path of ['/health', '/ready', '/docs', '/openapi.json']) expect((await fetch(`${stack.app.url}${path}`)).status, path).toBe(200);
  });

  it('a refused upload is never read: no upload row, file or part file', async () => {
    const before = await storedUploads();
    const colour = { r: 250, g: 5, b: 99 }; // an image no other request sent
    expect((await generate({}, QUICK, colour)).status).toBe(401);
    expect((await generate(bearer('kx_wrong'), QUICK, colour)).status).toBe(401);
    expect((await generate(bearer(keys.reader), QUICK, colour)).status).toBe(403);
    // A large body is answered without being read (and the connection closed after the answer).
    const large = new FormData();
    large.set('description', 'large');
    large.set('referenceImage', new Blob([new Uint8Array(8 * 1024 * 1024).fill(1)], { type: 'image/png' }), 'big.png');
    const refused = await fetch(`${stack.app.url}/generate-image`, { method: 'POST', body: large });
    expect(refused.status).toBe(401);
    expect(await storedUploads()).toEqual(before);
    // The same request with a key that may generate does store it: the check above can fail.
    await created(await generate(bearer(keys.generator), QUICK, colour));
    expect((await storedUploads()).rows).toBe(before.rows + 1);
  });

  it('a body larger than any upload may be is answered at once, unread, and its connection closed', async () => {
    const { hostname, port } = new URL(stack.app.url);
    const answer = await new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
      const req = request({ hostname, port, path: '/generate-image', method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(64 * 1024 * 1024) } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
      });
      req.on('error', reject);
      // Only a first kilobyte of the 64 MiB announced: the answer must not wait for the rest.
      req.write(Buffer.alloc(1024, 1));
    });
    expect(answer.status).toBe(401);
    expect(answer.connection).toBe('close');
    expect(JSON.parse(answer.body)).toEqual({ detail: expect.stringMatching(/API key is required/) });
  });

  it('429 with Retry-After over max-concurrent, and nothing stored for the refused request', async () => {
    const limited = await key({ name: 'limited', maxConcurrent: 1 });
    const first = await created(await generate(bearer(limited), SLOW, { r: 7, g: 7, b: 7 }));
    const before = await storedUploads();
    const refused = await generate(bearer(limited), QUICK, { r: 8, g: 8, b: 8 });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/max_concurrent.*1/);
    expect(await storedUploads()).toEqual(before);
    // Other keys are not limited by it; the key itself may go on once its task ends.
    await created(await generate(bearer(keys.b), QUICK, { r: 9, g: 9, b: 9 }));
    await cancel(first, bearer(limited));
    await waitFor(first, bearer(limited), ['cancelled']);
    await created(await generate(bearer(limited), QUICK, { r: 8, g: 8, b: 8 }));
  });

  it('429 over --rate and --images-per-day, naming the limit; nothing stored', async () => {
    const rated = await key({ name: 'rated', ratePerMinute: 1 });
    await created(await generate(bearer(rated), QUICK, { r: 30, g: 1, b: 1 }));
    const daily = await key({ name: 'daily', imagesPerDay: 2 });
    await created(await generate(bearer(daily), { ...QUICK, count: '2' }, { r: 32, g: 1, b: 1 }));
    const before = await storedUploads();
    const refused = await generate(bearer(rated), QUICK, { r: 31, g: 1, b: 1 });
    expect(refused.status).toBe(429);
    // The window is a minute from the accepted request: the retry comes within it.
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/rate/);
    const overDay = await generate(bearer(daily), QUICK, { r: 33, g: 1, b: 1 });
    expect(overDay.status).toBe(429);
    expect(((await overDay.json()) as { detail: string }).detail).toMatch(/images_per_day/);
    expect(await storedUploads()).toEqual(before);
  });

  it('idempotency keys belong to one API key: the same value from two keys makes two tasks', async () => {
    const fields = { ...QUICK, idempotencyKey: 'shared-idem-1' };
    const ofA = await created(await generate(bearer(keys.a), fields, { r: 40, g: 1, b: 1 }));
    const ofB = await created(await generate(bearer(keys.b), { ...fields, description: 'other parameters' }, { r: 41, g: 1, b: 1 }));
    expect(ofB).not.toBe(ofA);
    // A replay by its own key returns its own task, unchanged; the other key's task stays invisible to it.
    expect(await created(await generate(bearer(keys.a), fields, { r: 40, g: 1, b: 1 }))).toBe(ofA);
    expect((await status(ofB, bearer(keys.a))).status).toBe(404);
  });

  it('a revoked key is refused once the lookup cache expires', async () => {
    const { key: revocable, row } = await createApiKey(stack.app.db, { name: 'revocable' });
    expect((await status(taskOfA, bearer(revocable))).status).toBe(404);
    await revokeApiKey(stack.app.db, row.id, new Date().toISOString());
    await until('the revoked key refused', async () => (await status(taskOfA, bearer(revocable))).status === 401);
    const res = await status(taskOfA, bearer(revocable));
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
    expect(await res.json()).toEqual({ detail: 'The API key was revoked' });
  });
});
