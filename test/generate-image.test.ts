import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countByStatus } from '../src/db/tasks.js';
import { makeImage, pngClaiming } from './helpers/images.js';
import { postGenerate, startStack, type Stack } from './helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ config: { maxFileSize: 64 * 1024 } });
});
afterAll(async () => {
  await stack.close();
});

/** Nothing stored: no upload file (finished or partial) and no task. */
async function expectNothingStored(): Promise<void> {
  const uploads = await readdir(join(stack.config.dataDir, 'uploads')).catch(() => []);
  expect(uploads).toEqual([]);
  const counts = await countByStatus(stack.app.db);
  expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
}

describe('POST /generate-image rejects bad uploads with a clear reason and stores nothing', () => {
  const ok = { description: 'make it night' };

  it('an empty file', async () => {
    const res = await postGenerate(stack.app.url, ok, Buffer.alloc(0));
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({ detail: [{ loc: ['body', 'referenceImage'], msg: 'File is empty', type: 'upload_empty' }] });
    await expectNothingStored();
  });

  it('a truncated PNG', async () => {
    const png = await makeImage('png', 200, 200);
    const res = await postGenerate(stack.app.url, ok, png.subarray(0, png.length - 20));
    expect(res.status).toBe(422);
    const body = (await res.json()) as { detail: { msg: string; type: string }[] };
    expect(body.detail[0]).toMatchObject({ type: 'upload_incomplete' });
    expect(body.detail[0]!.msg).toMatch(/truncated/);
    await expectNothingStored();
  });

  it('a text file named .png', async () => {
    const res = await postGenerate(stack.app.url, ok, Buffer.from('hello, this is not an image\n'.repeat(10)), 'photo.png');
    expect(res.status).toBe(415);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/not a PNG, JPEG or WebP image/);
    await expectNothingStored();
  });

  it('a file over MAX_FILE_SIZE', async () => {
    const big = Buffer.concat([await makeImage('png', 64, 64), Buffer.alloc(100 * 1024, 7)]);
    const res = await postGenerate(stack.app.url, ok, big);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/65536/);
    await expectNothingStored();
    // The connection pool still works afterwards.
    expect((await fetch(`${stack.app.url}/health`)).status).toBe(200);
  });

  it('a body over the cap is refused from its Content-Length, before it is read', async () => {
    const res = await postGenerate(stack.app.url, ok, Buffer.alloc(2 * 1024 * 1024, 1));
    expect(res.status).toBe(413);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/exceeds the limit of 1114112 bytes \(MAX_FILE_SIZE is 65536\)/);
    await expectNothingStored();
  });

  it('a PNG claiming 100000x100000 pixels', async () => {
    const res = await postGenerate(stack.app.url, ok, pngClaiming(100_000, 100_000));
    expect(res.status).toBe(422);
    const body = (await res.json()) as { detail: { msg: string; type: string }[] };
    expect(body.detail[0]).toMatchObject({ type: 'upload_too_many_pixels' });
    expect(body.detail[0]!.msg).toMatch(/100000x100000/);
    await expectNothingStored();
  });

  it('a missing file', async () => {
    const res = await postGenerate(stack.app.url, ok, null);
    expect(res.status).toBe(422);
    expect(await res.json()).toEqual({ detail: [{ loc: ['body', 'referenceImage'], msg: 'Field required', type: 'missing' }] });
    await expectNothingStored();
  });
});

describe('POST /generate-image checks every field against its limits', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['count', { count: '5' }, 'count must be a whole number from 1 to 4'],
    ['count', { count: 'two' }, 'count must be a whole number from 1 to 4'],
    ['steps', { steps: '0' }, 'steps must be a whole number from 1 to 100'],
    ['guidance', { guidance: '20.5' }, 'guidance must be a number from 0 to 20'],
    ['size', { size: '1000x1000' }, 'size must be "auto" or WIDTHxHEIGHT with both sides multiples of 16 from 256 to 2048, e.g. "1024x1024"'],
    ['size', { size: '4096x1024' }, 'size must be "auto" or WIDTHxHEIGHT with both sides multiples of 16 from 256 to 2048, e.g. "1024x1024"'],
    ['seed', { seed: '-1' }, `seed must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`],
    ['description', { description: 'x'.repeat(2001) }, 'description must be 1 to 2000 characters'],
  ];
  for (const [field, fields, msg] of cases) {
    it(`${field} = ${JSON.stringify(Object.values(fields)[0]).slice(0, 20)}`, async () => {
      const res = await postGenerate(stack.app.url, { description: 'ok', ...fields });
      expect(res.status).toBe(422);
      expect(await res.json()).toEqual({ detail: [{ loc: ['body', field], msg, type: 'value_error' }] });
      await expectNothingStored();
    });
  }

  it('a missing description', async () => {
    const res = await postGenerate(stack.app.url, {});
    expect(await res.json()).toEqual({ detail: [{ loc: ['body', 'description'], msg: 'description is required', type: 'value_error' }] });
  });

  it('reports every bad field at once', async () => {
    const res = await postGenerate(stack.app.url, { description: '', count: '9', steps: '999' });
    const body = (await res.json()) as { detail: { loc: string[] }[] };
    expect(body.detail.map((d) => d.loc[1])).toEqual(['description', 'count', 'steps']);
  });
});

describe('idempotency keys', () => {
  it('the same key with the same parameters returns the same task; different parameters are a conflict', async () => {
    const image = await makeImage('png', 100, 100);
    const a = await postGenerate(stack.app.url, { description: 'once', idempotencyKey: 'k-1', seed: '5' }, image);
    const b = await postGenerate(stack.app.url, { description: 'once', idempotencyKey: 'k-1', seed: '5' }, image);
    const idA = ((await a.json()) as { task_id: string }).task_id;
    expect(((await b.json()) as { task_id: string }).task_id).toBe(idA);
    const c = await postGenerate(stack.app.url, { description: 'twice', idempotencyKey: 'k-1', seed: '5' }, image);
    expect(c.status).toBe(409);
    expect(await c.json()).toEqual({ detail: "idempotencyKey 'k-1' was already used for a task with different parameters" });
    await fetch(`${stack.app.url}/api/task/${idA}/cancel`, { method: 'POST' });
  });
});
