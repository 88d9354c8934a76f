/**
 * The BlobStore contract, run against both stores: FileStore in a temp folder and S3Store on a real
 * s3rver over HTTP (a fresh key prefix per test). Then what only one of them has: local paths and
 * folder pruning, key prefixes, the SDK's environment variables and the start-up check's messages.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../src/storage/blob-store.js';
import { openStore } from '../src/storage/open-store.js';
import { StorageError } from '../src/storage/storage-error.js';
import { startS3, type S3Server } from './helpers/s3.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let s3: S3Server;
let dir: string;
beforeAll(async () => {
  s3 = await startS3(['kontext-test']);
});
afterAll(async () => {
  await s3.close();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-storage-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every chunk a stream yields, and all of them joined. */
async function readAll(stream: Readable): Promise<{ bytes: Buffer; chunks: number; largestChunk: number }> {
  const parts: Buffer[] = [];
  let largestChunk = 0;
  for await (const chunk of stream) {
    parts.push(chunk as Buffer);
    largestChunk = Math.max(largestChunk, (chunk as Buffer).length);
  }
  return { bytes: Buffer.concat(parts), chunks: parts.length, largestChunk };
}

async function getBytes(store: BlobStore, key: string): Promise<Buffer | undefined> {
  const stream = await store.get(key);
  return stream && (await readAll(stream)).bytes;
}

/** `size` bytes that differ from any other `seed`'s. */
function content(seed: number, size = 1000): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
}

/** Every file below `root`, as relative paths. */
async function filesBelow(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(root.length + 1));
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const kinds = {
  file: () => openStore(pathToFileURL(join(dir, 'store')).href, dir),
  s3: () => openStore(`s3://${s3.bucket}/run-${randomUUID()}`, dir, { s3: s3.clientConfig }),
};

describe.each(Object.keys(kinds) as (keyof typeof kinds)[])('%s store: the BlobStore contract', (kind) => {
  let store: BlobStore;
  beforeEach(async () => {
    store = kinds[kind]();
    await store.check();
  });
  afterEach(() => store.close());

  it('stores a stream under a key and gives it back, with its size, ETag and time', async () => {
    const bytes = content(1, 5000);
    const put = await store.put('uploads/abc.png', Readable.from([bytes.subarray(0, 1234), bytes.subarray(1234)]), { contentType: 'image/png' });
    expect(put.size).toBe(5000);
    expect(await getBytes(store, 'uploads/abc.png')).toEqual(bytes);
    const stat = await store.stat('uploads/abc.png');
    expect(stat).toMatchObject({ size: 5000, etag: put.etag });
    expect(stat!.etag).toMatch(/^"[^"]+"$/);
    // Written just now, to S3's one-second resolution (and a few seconds of clock difference).
    expect(Math.abs(stat!.lastModified.getTime() - Date.now())).toBeLessThan(60_000);
    expect(await store.exists('uploads/abc.png')).toBe(true);
  });

  it('copies a local file, or takes it over with move', async () => {
    const source = join(dir, 'source.png');
    await writeFile(source, content(2));
    await store.put('images/t1/0.png', source);
    expect(await readFile(source)).toEqual(content(2));
    expect(await getBytes(store, 'images/t1/0.png')).toEqual(content(2));

    await writeFile(source, content(3));
    const put = await store.put('images/t1/1.png', source, { move: true });
    await expect(readFile(source)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await getBytes(store, 'images/t1/1.png')).toEqual(content(3));
    expect((await store.stat('images/t1/1.png'))?.etag).toBe(put.etag);
  });

  it('reads byte ranges, clamps the end, and refuses a start past the end', async () => {
    const bytes = content(4, 100);
    await store.put('images/t/0.png', Readable.from([bytes]));
    const range = async (start: number, end?: number) => {
      const stream = await store.get('images/t/0.png', { range: end === undefined ? { start } : { start, end } });
      return (await readAll(stream!)).bytes;
    };
    expect(await range(2, 5)).toEqual(bytes.subarray(2, 6));
    expect(await range(90)).toEqual(bytes.subarray(90));
    expect(await range(99, 99)).toEqual(bytes.subarray(99));
    expect(await range(50, 1000)).toEqual(bytes.subarray(50));
    await expect(store.get('images/t/0.png', { range: { start: 100 } })).rejects.toBeInstanceOf(RangeError);
    await expect(store.get('images/t/0.png', { range: { start: 10, end: 9 } })).rejects.toBeInstanceOf(RangeError);
  });

  it('answers undefined or false for a key that is not there, and deletes without complaint', async () => {
    expect(await store.get('images/none/0.png')).toBeUndefined();
    expect(await store.get('images/none/0.png', { range: { start: 0, end: 1 } })).toBeUndefined();
    expect(await store.stat('images/none/0.png')).toBeUndefined();
    expect(await store.exists('images/none/0.png')).toBe(false);
    await store.delete('images/none/0.png');
  });

  it('deletes an object, and stores the key again afterwards', async () => {
    await store.put('images/t2/0.png', Readable.from([content(5)]));
    await store.delete('images/t2/0.png');
    expect(await store.exists('images/t2/0.png')).toBe(false);
    expect(await store.get('images/t2/0.png')).toBeUndefined();
    await store.put('images/t2/0.png', Readable.from([content(6)]));
    expect(await getBytes(store, 'images/t2/0.png')).toEqual(content(6));
  });

  it('deletes a folder with everything under it, and nothing beside it', async () => {
    for (const key of ['images/t9/0.png', 'images/t9/0.png.w256.q80.webp', 'images/t9/1.png', 'images/t90/0.png']) {
      await store.put(key, Readable.from([content(7)]));
    }
    await store.deleteFolder('images/t9');
    for (const key of ['images/t9/0.png', 'images/t9/0.png.w256.q80.webp', 'images/t9/1.png']) expect(await store.exists(key)).toBe(false);
    expect(await store.exists('images/t90/0.png')).toBe(true); // a sibling whose name starts the same
    await store.deleteFolder('images/none');
  });

  it('gives new bytes a new ETag', async () => {
    const first = await store.put('uploads/x.png', Readable.from([content(7)]));
    const second = await store.put('uploads/x.png', Readable.from([content(8)]));
    expect(second.etag).not.toBe(first.etag);
    expect((await store.stat('uploads/x.png'))?.etag).toBe(second.etag);
  });

  it('keeps the previous object whole when a put fails half-way', async () => {
    await store.put('uploads/y.png', Readable.from([content(9, 4000)]));
    async function* failing() {
      yield content(10, 2000);
      throw new Error('client went away');
    }
    await expect(store.put('uploads/y.png', Readable.from(failing()))).rejects.toThrow('client went away');
    expect(await getBytes(store, 'uploads/y.png')).toEqual(content(9, 4000));
    if (kind === 'file') expect(await filesBelow(join(dir, 'store'))).toEqual([join('uploads', 'y.png')]);
  });

  it('takes concurrent puts of one key (same bytes, as uploads under their hash) and keeps one whole object', async () => {
    const bytes = content(19, 256 * KiB);
    const results = await Promise.all(
      Array.from({ length: 6 }, () => store.put('uploads/same.png', Readable.from([bytes.subarray(0, 100 * KiB), bytes.subarray(100 * KiB)]))),
    );
    for (const r of results) expect(r.size).toBe(256 * KiB);
    expect(sha((await getBytes(store, 'uploads/same.png'))!)).toBe(sha(bytes));
    expect((await store.stat('uploads/same.png'))?.size).toBe(256 * KiB);
    if (kind === 'file') expect(await filesBelow(join(dir, 'store'))).toEqual([join('uploads', 'same.png')]);
  });

  it('streams a large object in many chunks, never as one buffer', async () => {
    const size = 6 * MiB;
    const hash = createHash('sha256');
    // Produced 64 KiB at a time, so the put cannot have been handed the whole object either.
    async function* produce() {
      for (let i = 0; i < size / (64 * KiB); i++) {
        const chunk = content(i, 64 * KiB);
        hash.update(chunk);
        yield chunk;
      }
    }
    const put = await store.put('images/big/0.png', Readable.from(produce()));
    expect(put.size).toBe(size);
    const { bytes, chunks, largestChunk } = await readAll((await store.get('images/big/0.png'))!);
    expect(bytes.length).toBe(size);
    expect(sha(bytes)).toBe(hash.digest('hex'));
    expect(chunks).toBeGreaterThanOrEqual(8);
    expect(largestChunk).toBeLessThanOrEqual(1 * MiB);
  });

  it('refuses keys that could leave the store or clash with its temporary files', async () => {
    for (const key of ['', '../x.png', 'uploads/../../x.png', '/etc/passwd', 'uploads//x.png', 'uploads/.x.png', 'uploads/x.png/', 'a\\b.png']) {
      await expect(store.put(key, Readable.from([content(1)])), key).rejects.toBeInstanceOf(TypeError);
      await expect(store.get(key), key).rejects.toBeInstanceOf(TypeError);
    }
  });
});

describe('FileStore', () => {
  // S3 itself never shows a partial object; s3rver writes objects in place, so a reader there can
  // see a part of one and this is shown on the folder store only.
  it('lets concurrent puts of different bytes race: readers and the result only ever see one whole version', async () => {
    const store = openStore(pathToFileURL(join(dir, 'store')).href, dir);
    const versions = Array.from({ length: 6 }, (_, i) => content(20 + i, 256 * KiB));
    const hashes = new Set(versions.map(sha));
    let writing = true;
    const seen: (string | undefined)[] = [];
    const reader = (async () => {
      while (writing) {
        const bytes = await getBytes(store, 'images/race/0.png');
        seen.push(bytes && sha(bytes));
      }
    })();
    await Promise.all(versions.map((v) => store.put('images/race/0.png', Readable.from([v.subarray(0, 100 * KiB), v.subarray(100 * KiB)]))));
    writing = false;
    await reader;
    expect(seen.length).toBeGreaterThan(0);
    for (const h of seen) if (h !== undefined) expect(hashes.has(h)).toBe(true);
    expect(hashes.has(sha((await getBytes(store, 'images/race/0.png'))!))).toBe(true);
    expect(await filesBelow(join(dir, 'store'))).toEqual([join('images', 'race', '0.png')]);
  });

  it('gives local paths to the files, and removes folders their last object leaves', async () => {
    const store = openStore(pathToFileURL(join(dir, 'store')).href, dir);
    await store.put('images/t3/0.png', Readable.from([content(11)]));
    await store.put('images/t3/1.png', Readable.from([content(12)]));
    expect(await readFile(store.localPath!('images/t3/0.png'))).toEqual(content(11));
    await store.delete('images/t3/0.png');
    expect(await readdir(join(dir, 'store', 'images', 't3'))).toEqual(['1.png']);
    await store.delete('images/t3/1.png');
    expect(await readdir(join(dir, 'store'))).toEqual([]);
  });

  it('uses DATA_DIR when STORAGE_URL is unset, and names the variable that chose an unusable folder', async () => {
    const store = openStore(undefined, join(dir, 'data'));
    await store.check();
    await store.put('uploads/z.png', Readable.from([content(13)]));
    expect(await readFile(join(dir, 'data', 'uploads', 'z.png'))).toEqual(content(13));

    await writeFile(join(dir, 'a-file'), 'not a folder');
    const blocked = join(dir, 'a-file', 'data');
    await expect(openStore(undefined, blocked).check()).rejects.toThrow(`DATA_DIR=${blocked}: cannot use the folder ${blocked} (ENOTDIR)`);
    const url = pathToFileURL(blocked).href;
    const err = await openStore(url, dir).check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toBe(`STORAGE_URL=${url}: cannot use the folder ${blocked} (ENOTDIR)`);
  });
});

describe('S3Store', () => {
  it('keeps objects below the prefix of STORAGE_URL, with their content type', async () => {
    const store = openStore(`s3://${s3.bucket}/tenant-a/kontext`, dir, { s3: s3.clientConfig });
    await store.put('uploads/p.png', Readable.from([content(14)]), { contentType: 'image/png' });
    expect(store.localPath).toBeUndefined();
    const client = new S3Client(s3.clientConfig);
    try {
      const out = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'tenant-a/kontext/uploads/p.png' }));
      expect(out.ContentType).toBe('image/png');
      expect(Buffer.from(await out.Body!.transformToByteArray())).toEqual(content(14));
    } finally {
      client.destroy();
      store.close();
    }
  });

  it("takes endpoint, credentials and region from the AWS SDK's own variables", async () => {
    const restore = s3.applyEnv();
    try {
      const store = openStore(`s3://${s3.bucket}/from-env`, dir);
      await store.check();
      await store.put('uploads/e.png', Readable.from([content(15)]));
      expect(await getBytes(store, 'uploads/e.png')).toEqual(content(15));
      store.close();
    } finally {
      restore();
    }
  });

  it('stops the start with one line naming STORAGE_URL when the bucket does not exist', async () => {
    const store = openStore('s3://no-such-bucket/x', dir, { s3: s3.clientConfig });
    const err = await store.check().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toBe(`STORAGE_URL=s3://no-such-bucket/x: the bucket "no-such-bucket" does not exist at ${s3.endpoint}`);
    // Reading from it is an error too, not an absent object.
    await expect(store.get('uploads/a.png')).rejects.toMatchObject({ name: 'NoSuchBucket' });
    store.close();
  });

  it('stops the start with one line when the endpoint refuses connections', async () => {
    const closed = await new Promise<Server>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => resolve(server));
    });
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const endpoint = `http://127.0.0.1:${port}`;
    const store = openStore(`s3://${s3.bucket}`, dir, { s3: { ...s3.clientConfig, endpoint } });
    await expect(store.check()).rejects.toThrow(`STORAGE_URL=s3://${s3.bucket}: cannot reach ${endpoint} (ECONNREFUSED)`);
    store.close();
  });

  it('gives up on an endpoint that accepts connections but never answers, after checkTimeoutMs', async () => {
    const sockets = new Set<Socket>();
    const silent = await new Promise<Server>((resolve) => {
      const server = createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => undefined);
      });
      server.listen(0, '127.0.0.1', () => resolve(server));
    });
    const endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
    const store = openStore(`s3://${s3.bucket}`, dir, { s3: { ...s3.clientConfig, endpoint }, checkTimeoutMs: 300 });
    try {
      await expect(store.check()).rejects.toThrow(`STORAGE_URL=s3://${s3.bucket}: ${endpoint} did not answer within 0.3 s`);
      expect(sockets.size).toBeGreaterThan(0);
    } finally {
      store.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('openStore', () => {
  it('refuses a scheme it does not know, naming STORAGE_URL', () => {
    expect(() => openStore('ftp://host/path', dir)).toThrow('STORAGE_URL=ftp://host/path: unknown scheme ftp: (use file:///absolute/path or s3://bucket/prefix)');
  });
});
