/**
 * What the stores leave on this machine's disk: the folder store's start-up check removes the
 * `.part` files a crash between write and rename left (only those old enough that no other replica
 * can still be writing them), and the S3 store spools a streamed put under DATA_DIR/tmp, not the
 * system's temp folder, removing the spool once the object is sent.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../src/storage/open-store.js';
import { startS3, type S3Server } from './helpers/s3.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-leftovers-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes a file at `path` (folders created) whose modification time is `ageMs` in the past. */
async function fileAged(path: string, ageMs: number): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, 'partial');
  const then = new Date(Date.now() - ageMs);
  await utimes(path, then, then);
}

describe('FileStore start-up check', () => {
  it('removes stale .part files in the folder and in uploads/, and keeps fresh ones and everything else', async () => {
    const root = join(dir, 'store');
    const part = (name: string) => `.${name}.${randomUUID()}.part`;
    const hour = 3600_000;
    const staleUpload = join(root, 'uploads', part('a.png'));
    const staleTop = join(root, part('x'));
    const fresh = join(root, 'uploads', part('b.png'));
    const stored = join(root, 'uploads', 'c.png');
    const notOurs = join(root, 'uploads', '.notes.part');
    const inTask = join(root, 'images', 't1', part('0.png'));
    for (const path of [staleUpload, staleTop, stored, notOurs, inTask]) await fileAged(path, hour);
    await fileAged(fresh, 1000);

    await openStore(pathToFileURL(root).href, dir).check();

    expect((await readdir(join(root, 'uploads'))).sort()).toEqual([fresh, notOurs, stored].map((p) => p.slice(p.lastIndexOf('/') + 1)).sort());
    expect(await readdir(root)).not.toContain(staleTop.slice(root.length + 1));
    // A task's folder goes with its task (cleanup deletes it whole); the start does not walk them.
    expect(await readdir(join(root, 'images', 't1'))).toHaveLength(1);
  });

  it('sweeps DATA_DIR the same way when STORAGE_URL is unset', async () => {
    const data = join(dir, 'data');
    const stale = join(data, 'uploads', `.d.png.${randomUUID()}.part`);
    await fileAged(stale, 3600_000);
    await openStore(undefined, data).check();
    expect(await readdir(join(data, 'uploads'))).toEqual([]);
  });
});

describe('S3Store spool', () => {
  let s3: S3Server;
  beforeAll(async () => {
    s3 = await startS3(['kontext-spool']);
  });
  afterAll(async () => {
    await s3.close();
  });

  it('spools a streamed put under DATA_DIR/tmp and removes the spool once the object is stored', async () => {
    const store = openStore(`s3://${s3.bucket}/spool-${randomUUID()}`, dir, { s3: s3.clientConfig });
    try {
      const source = new Readable({ read() {} });
      source.push(Buffer.alloc(64 * 1024, 1));
      const put = store.put('uploads/s.png', source);
      // The source has not ended: the put is still spooling, so its file is there now.
      let spools: string[] = [];
      for (let i = 0; i < 200 && spools.length === 0; i++) {
        spools = await readdir(join(dir, 'tmp')).catch(() => []);
        if (spools.length === 0) await new Promise((r) => setTimeout(r, 10));
      }
      expect(spools).toHaveLength(1);
      expect(spools[0]).toMatch(/^kontext-s3-/);
      source.push(null);
      await put;
      expect(await readdir(join(dir, 'tmp'))).toEqual([]);
      expect((await store.stat('uploads/s.png'))?.size).toBe(64 * 1024);
    } finally {
      store.close();
    }
  });

  it('spools under the tmpDir it is given', async () => {
    const spool = join(dir, 'replica-tmp');
    const store = openStore(`s3://${s3.bucket}/spool-${randomUUID()}`, dir, { s3: s3.clientConfig, tmpDir: spool });
    try {
      const source = new Readable({ read() {} });
      source.push(Buffer.alloc(1000, 2));
      const put = store.put('uploads/t.png', source);
      let spools: string[] = [];
      for (let i = 0; i < 200 && spools.length === 0; i++) {
        spools = await readdir(spool).catch(() => []);
        if (spools.length === 0) await new Promise((r) => setTimeout(r, 10));
      }
      expect(spools).toHaveLength(1);
      source.push(null);
      await put;
      expect(await readdir(spool)).toEqual([]);
    } finally {
      store.close();
    }
  });
});
