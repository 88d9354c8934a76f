/**
 * Issue 9, items 13 and 15, over real HTTP: what the service tells anyone who asks (result paths,
 * /health, echoed cursors), the metadata of stored images, and the pixel limit on uploads.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertTask } from '../src/db/tasks.js';
import { stripPngMetadata } from '../src/images/strip-png-metadata.js';
import { collect, gql, generate, wsClient, type GraphQLBody } from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { closedPort } from './helpers/ports.js';
import { postGenerate, startStack, taskStatus, until, waitForStatus, type Stack, type TaskStatusBody } from './helpers/stack.js';

/** 256 x 256: small images just under and over the limit keep the test fast. */
const MAX_PIXELS = 65_536;

let stack: Stack;
let done: TaskStatusBody;
beforeAll(async () => {
  stack = await startStack({ config: { maxImagePixels: MAX_PIXELS } });
  const res = await postGenerate(stack.app.url, { description: 'leak check', count: '1', steps: '2', size: '256x256' }, await makeImage('png', 200, 150));
  expect(res.status).toBe(200);
  done = await waitForStatus(stack.app.url, ((await res.json()) as { task_id: string }).task_id, ['completed']);
});
afterAll(async () => {
  await stack.close();
});

describe('result_path', () => {
  it('is relative to DATA_DIR in task-status and in the cancel answer; no server path is shown', async () => {
    expect(done.result_path).toEqual([`images/${done.task_id}/0.png`]);
    const cancel = await fetch(`${stack.app.url}/api/task/${done.task_id}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(200);
    const text = await cancel.text();
    expect((JSON.parse(text) as TaskStatusBody).result_path).toEqual([`images/${done.task_id}/0.png`]);
    expect(text).not.toContain(stack.dir);
  });

  it('a legacy path outside DATA_DIR shows as its file name; one inside, relative', async () => {
    const at = new Date().toISOString();
    const stored = ['/srv/old-service/outputs/legacy-1_0.png', join(stack.config.dataDir, 'outputs', 'legacy-1_1.png')];
    await insertTask(stack.app.db, { id: 'legacy-leak', description: 'old', status: 'completed', result_path: JSON.stringify(stored), error_message: null, created_at: at, updated_at: at });
    const body = await taskStatus(stack.app.url, 'legacy-leak');
    expect(body.result_path).toEqual(['legacy-1_0.png', 'outputs/legacy-1_1.png']);
    // The database keeps what it had.
    const row = await stack.app.db.selectFrom('tasks').select('result_path').where('id', '=', 'legacy-leak').executeTakeFirstOrThrow();
    expect(JSON.parse(row.result_path!)).toEqual(stored);
  });
});

describe('/health', () => {
  it('by default shows per worker only its index, reachable and ready: no URL, device, queue or error', async () => {
    await until('the worker ready', () => stack.app.pool.members[0]!.healthy);
    const text = await (await fetch(`${stack.app.url}/health`)).text();
    const health = JSON.parse(text) as Record<string, unknown>;
    expect(health).toEqual({
      status: 'ok',
      comfyui: [{ index: 0, reachable: true, ready: true }],
      // Which replica answered (INSTANCE_ID, by default the host name), on which database; no Redis here.
      instance: expect.any(String) as unknown,
      database: expect.objectContaining({ ok: true, dialect: 'sqlite' }) as unknown,
      redis: null,
      // No key exists here: the service is open, and says so.
      auth: 'open',
      queue: { pending: 0, processing: 0 },
      version: expect.any(String) as unknown,
      uptime_s: expect.any(Number) as unknown,
    });
    expect(health.database).not.toHaveProperty('error');
    expect(text).not.toContain(stack.sims[0]!.url);
  });

  it('a worker that does not answer: degraded, still without its URL or error; HEALTH_DETAILS=true shows them', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const down = await startStack({ workers: 0, config: { comfyuiUrls: [dead] } });
    try {
      await until('a failed check', () => down.app.pool.members[0]!.lastError !== 'not checked yet');
      const text = await (await fetch(`${down.app.url}/health`)).text();
      expect(JSON.parse(text)).toMatchObject({ status: 'degraded', comfyui: [{ index: 0, reachable: false, ready: false }] });
      expect(Object.keys((JSON.parse(text) as { comfyui: object[] }).comfyui[0]!).sort()).toEqual(['index', 'reachable', 'ready']);
      expect(text).not.toContain(dead);
      expect(text).not.toMatch(/ECONNREFUSED|error/i);

      await down.app.close();
      down.config.healthDetails = true;
      await down.restart();
      await until('a failed check', () => down.app.pool.members[0]!.lastError !== 'not checked yet');
      const detailed = (await (await fetch(`${down.app.url}/health`)).json()) as { comfyui: Record<string, unknown>[] };
      expect(detailed.comfyui[0]).toMatchObject({ index: 0, reachable: false, ready: false, url: dead, queue: null, device: null });
      expect(detailed.comfyui[0]!.last_error).toEqual(expect.any(String));
    } finally {
      await down.close();
    }
  });
});

describe('tasks(after:)', () => {
  const TASKS = /* GraphQL */ `
    query ($after: String) {
      tasks(first: 5, after: $after) {
        edges { cursor }
      }
    }
  `;

  it('a 1 MB cursor is refused naming the field and the limit, without echoing it', async () => {
    // 1 MB, inside the 1 MiB limit of a JSON body.
    const huge = 'A'.repeat(1_000_000);
    const body: GraphQLBody<unknown> = await gql(stack.app.url, TASKS, { after: huge });
    const error = body.errors?.[0];
    expect(error?.message).toBe('after must be a task id of at most 36 characters (got 1000000)');
    expect(error?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
    expect(JSON.stringify(body).length).toBeLessThan(1000);
  });

  it('37 characters is too long; a 36-character id that is no task gets the usual answer', async () => {
    const long = await gql(stack.app.url, TASKS, { after: `${done.task_id}x` });
    expect(long.errors?.[0]?.message).toMatch(/at most 36 characters \(got 37\)/);
    const gone = await gql(stack.app.url, TASKS, { after: '00000000-0000-7000-8000-000000000000' });
    expect(gone.errors?.[0]?.message).toMatch(/no task 00000000-0000-7000-8000-000000000000/);
    const page = await gql<{ tasks: { edges: unknown[] } }>(stack.app.url, TASKS, { after: done.task_id });
    expect(page.errors).toBeUndefined();
  });
});

describe('client input echoed in GraphQL errors', () => {
  const huge = 'A'.repeat(100_000);
  /** The first error's message, whatever the status (400 for a variable that does not coerce). */
  async function firstError(query: string, variables?: Record<string, unknown>): Promise<string> {
    const res = await fetch(`${stack.app.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
    return ((await res.json()) as GraphQLBody<unknown>).errors?.[0]?.message ?? '';
  }

  it('a 100 KB variable of the wrong type comes back as a short prefix and its length, over HTTP and graphql-ws', async () => {
    const query = 'query ($n: Int) { tasks(first: $n) { edges { node { id } } } }';
    const message = await firstError(query, { n: huge });
    expect(message).toMatch(/^Variable "\$n" got invalid value "A{40}…" \(100000 characters\)/);
    expect(message.length).toBeLessThan(300);
    const client = wsClient(stack.app.url);
    try {
      // 50 KB: a WebSocket message may carry at most 64 KiB.
      const [result] = await collect(client, query, { n: huge.slice(0, 50_000) });
      expect(result?.errors?.[0]?.message).toBe(message.replaceAll('100000 characters', '50000 characters'));
    } finally {
      await client.dispose();
    }
  });

  it('a long string literal in the document is not echoed either', async () => {
    const message = await firstError(`{ tasks(first: "${'B'.repeat(20_000)}") { edges { node { id } } } }`);
    expect(message).toContain('"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB…" (20000 characters)');
    expect(message.length).toBeLessThan(300);
  });
});

/** The one PNG the simulator saved for the task of `done`, as ComfyUI wrote it. */
async function comfyOutput(): Promise<string> {
  const outputs = join(stack.dir, 'comfyui-0', 'output');
  const names = (await readdir(outputs, { recursive: true })).filter((n) => n.endsWith('.png'));
  expect(names).toHaveLength(1);
  return join(outputs, names[0]!);
}

describe('stored images', () => {
  it('ComfyUI’s output carries its prompt; the served image does not (KEEP_IMAGE_METADATA off), pixels the same', async () => {
    const original = await readFile(await comfyOutput());
    expect(original.includes('tEXtprompt')).toBe(true);
    const served = Buffer.from(await (await fetch(done.images[0]!)).arrayBuffer());
    expect(served.includes('tEXt')).toBe(false);
    expect(served.includes('KSampler')).toBe(false);
    expect((await sharp(served).raw().toBuffer()).equals(await sharp(original).raw().toBuffer())).toBe(true);
  });

  it('stripPngMetadata on ComfyUI’s real output file: same chunks but the text ones, byte for byte', async () => {
    const file = await comfyOutput();
    const before = await readFile(file);
    const size = await stripPngMetadata(file);
    const after = await readFile(file);
    expect(size).toBe(after.length);
    expect(after.includes('tEXt')).toBe(false);
    // Only whole chunks were cut: what is left is the original with the text chunks taken out.
    const textBytes = [...before.toString('latin1').matchAll(/tEXt/g)].reduce((n, m) => n + 12 + before.readUInt32BE(m.index - 4), 0);
    expect(after.length).toBe(before.length - textBytes);
    expect(after.subarray(-12).equals(before.subarray(-12))).toBe(true); // IEND
  });
});

describe('MAX_IMAGE_PIXELS', () => {
  it('REST: one pixel row over the limit is refused with 422 naming referenceImage and the limit; at the limit, accepted', async () => {
    const over = await postGenerate(stack.app.url, { description: 'too big', steps: '1', size: '256x256' }, await makeImage('png', 256, 257));
    expect(over.status).toBe(422);
    expect(await over.json()).toEqual({
      detail: [{ loc: ['body', 'referenceImage'], msg: `Image is 256x257 (65792 pixels); the limit is ${MAX_PIXELS} pixels (MAX_IMAGE_PIXELS)`, type: 'upload_too_many_pixels' }],
    });
    const at = await postGenerate(stack.app.url, { description: 'just fits', steps: '1', size: '256x256' }, await makeImage('png', 256, 256));
    expect(at.status).toBe(200);
  });

  it('GraphQL: UploadRejectedError TOO_MANY_PIXELS naming the limit; at the limit, accepted', async () => {
    const over = await generate(stack.app.url, { description: 'too big', steps: 1, size: '256x256' }, await makeImage('jpeg', 300, 300));
    expect(over).toMatchObject({ __typename: 'UploadRejectedError', reason: 'TOO_MANY_PIXELS' });
    if (over.__typename === 'UploadRejectedError') expect(over.message).toContain(`the limit is ${MAX_PIXELS} pixels`);
    const at = await generate(stack.app.url, { description: 'just fits', steps: 1, size: '256x256' }, await makeImage('jpeg', 256, 256));
    expect(at.__typename).toBe('GenerateSuccess');
  });
});
