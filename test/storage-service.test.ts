/**
 * The whole service on a BlobStore other than DATA_DIR: STORAGE_URL=s3://bucket/prefix on a real
 * s3rver, and STORAGE_URL=file:///folder with DATA_DIR elsewhere. Uploads and images must live in the
 * store only (DATA_DIR keeps the database), be served from it with ETag, 304 and Range, reach ComfyUI
 * from it, and go from it with cleanup.
 */
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from '../src/app.js';
import { makeImage } from './helpers/images.js';
import { startS3, type S3Server } from './helpers/s3.js';
import { postGenerate, startStack, waitForStatus, type Stack, type TaskStatusBody } from './helpers/stack.js';

/** Every file below `dir`, relative, with `/` separators. */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1).split(/[\\/]/).join('/'))
    .sort();
}

/** DATA_DIR holds the SQLite database (and its journal files), nothing else. */
function onlyDatabase(files: string[]): string[] {
  return files.filter((f) => !/^kontext\.db(-wal|-shm|-journal)?$/.test(f));
}

describe('STORAGE_URL=s3://bucket/prefix on s3rver', () => {
  let s3: S3Server;
  let restoreEnv: () => void;
  let client: S3Client;
  let stack: Stack;
  let reference: Buffer;
  let done: TaskStatusBody;

  const keysInBucket = async (): Promise<string[]> => {
    const out = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
    return (out.Contents ?? []).map((o) => o.Key!).sort();
  };

  beforeAll(async () => {
    s3 = await startS3(['kontext-service']);
    // The in-process app's S3 client reads the SDK's own variables, as in production.
    restoreEnv = s3.applyEnv();
    client = new S3Client(s3.clientConfig);
    stack = await startStack({ config: { storageUrl: `s3://${s3.bucket}/gateway` } });
    reference = await makeImage('png', 320, 240);
    const res = await postGenerate(stack.app.url, { description: 'from the bucket', count: '2', steps: '3', size: '256x256', seed: '5' }, reference);
    expect(res.status).toBe(200);
    done = await waitForStatus(stack.app.url, ((await res.json()) as { task_id: string }).task_id, ['completed']);
  });
  afterAll(async () => {
    await stack?.close();
    client?.destroy();
    restoreEnv?.();
    await s3?.close();
  });

  it('keeps the upload and the images in the bucket under the prefix, and nothing of them in DATA_DIR', async () => {
    const keys = await keysInBucket();
    expect(keys).toHaveLength(3);
    expect(keys.filter((k) => /^gateway\/uploads\/[0-9a-f]{64}\.png$/.test(k))).toHaveLength(1);
    expect(keys.filter((k) => k.startsWith(`gateway/images/${done.task_id}/`)).sort()).toEqual([0, 1].map((i) => `gateway/images/${done.task_id}/${i}.png`));
    expect(onlyDatabase(await filesBelow(stack.config.dataDir))).toEqual([]);
    // The reference reached ComfyUI from the bucket: what the simulator holds is what was uploaded.
    const inputs = await filesBelow(join(stack.dir, 'comfyui-0', 'input'));
    expect(inputs).toHaveLength(1);
    expect(await readFile(join(stack.dir, 'comfyui-0', 'input', inputs[0]!))).toEqual(reference);
  });

  it('serves an image from the bucket with ETag and long cache, 304 for its ETag, 206 for a range', async () => {
    const res = await fetch(done.images[0]!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^"[^"]+"$/);
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.subarray(1, 4).toString()).toBe('PNG');
    expect(Number(res.headers.get('content-length'))).toBe(body.length);

    const again = await fetch(done.images[0]!, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);

    const part = await fetch(done.images[0]!, { headers: { range: 'bytes=10-109' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-109/${body.length}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(body.subarray(10, 110));

    const tail = await fetch(done.images[0]!, { headers: { range: 'bytes=-20' } });
    expect(tail.status).toBe(206);
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(body.subarray(body.length - 20));

    const outside = await fetch(done.images[0]!, { headers: { range: `bytes=${body.length}-` } });
    expect(outside.status).toBe(416);
    expect(outside.headers.get('content-range')).toBe(`bytes */${body.length}`);
  });

  it('answers 404 for an image whose object left the bucket', async () => {
    const key = `images/${done.task_id}/1.png`;
    const bytes = await stack.app.store.get(key);
    const saved = Buffer.concat(await bytes!.toArray());
    await stack.app.store.delete(key);
    try {
      const res = await fetch(done.images[1]!);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ detail: 'Image 1 of this task is missing from storage' });
    } finally {
      await stack.app.store.put(key, Readable.from([saved]));
    }
  });

  it('refuses to start on a bucket that does not exist, with one line naming STORAGE_URL', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kontext-nobucket-'));
    try {
      const config = { ...stack.config, dataDir, storageUrl: 's3://no-such-bucket/x' };
      await expect(startApp(config)).rejects.toThrow(`STORAGE_URL=s3://no-such-bucket/x: the bucket "no-such-bucket" does not exist at ${s3.endpoint}`);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('deletes the objects from the bucket with the task (cleanup)', async () => {
    expect(await keysInBucket()).toHaveLength(3);
    expect(await stack.app.engine.cleanup(0)).toBe(1);
    expect(await keysInBucket()).toEqual([]);
    expect((await fetch(done.images[0]!)).status).toBe(404);
  });

  it('stores identical uploads once, and removes an upload whose request fails from the bucket', async () => {
    const ids: string[] = [];
    for (const d of ['first', 'second']) {
      const res = await postGenerate(stack.app.url, { description: d, steps: '2', size: '256x256' }, reference);
      ids.push(((await res.json()) as { task_id: string }).task_id);
    }
    for (const id of ids) await waitForStatus(stack.app.url, id, ['completed']);
    expect((await keysInBucket()).filter((k) => k.startsWith('gateway/uploads/'))).toHaveLength(1);

    const other = await makeImage('png', 200, 150);
    const refused = await postGenerate(stack.app.url, { description: 'bad steps', steps: '0' }, other);
    expect(refused.status).toBe(422);
    expect((await keysInBucket()).filter((k) => k.startsWith('gateway/uploads/'))).toHaveLength(1);
    expect(await stack.app.engine.cleanup(0)).toBe(2);
    expect(await keysInBucket()).toEqual([]);
  });
});

describe('STORAGE_URL=file:///folder with DATA_DIR elsewhere', () => {
  let storageDir: string;
  let stack: Stack;

  beforeAll(async () => {
    storageDir = await mkdtemp(join(tmpdir(), 'kontext-storage-'));
    stack = await startStack({ config: { storageUrl: pathToFileURL(storageDir).href } });
  });
  afterAll(async () => {
    await stack?.close();
    if (storageDir) await rm(storageDir, { recursive: true, force: true });
  });

  it('stores the upload and the images under the storage folder and serves them from there', async () => {
    const res = await postGenerate(stack.app.url, { description: 'on a shared volume', count: '1', steps: '2', size: '256x256' });
    expect(res.status).toBe(200);
    const done = await waitForStatus(stack.app.url, ((await res.json()) as { task_id: string }).task_id, ['completed']);

    const stored = await filesBelow(storageDir);
    expect(stored.filter((f) => /^uploads\/[0-9a-f]{64}\.png$/.test(f))).toHaveLength(1);
    expect(stored).toContain(`images/${done.task_id}/0.png`);
    expect(stored).toHaveLength(2);
    expect(onlyDatabase(await filesBelow(stack.config.dataDir))).toEqual([]);

    const image = await fetch(done.images[0]!);
    expect(image.status).toBe(200);
    expect(Buffer.from(await image.arrayBuffer())).toEqual(await readFile(join(storageDir, 'images', done.task_id, '0.png')));

    expect(await stack.app.engine.cleanup(0)).toBe(1);
    expect(await filesBelow(storageDir)).toEqual([]);
  });
});
