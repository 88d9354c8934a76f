/**
 * The folder store makes each rename durable with an fsync of its folder; puts that finish together
 * share those fsyncs (a put waits for one that started after its rename) instead of one each. A file
 * moved in that its caller already synced (`synced`) is not synced again.
 */
import { mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openStore } from '../src/storage/open-store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-fsync-'));
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

describe('FileStore folder fsyncs', () => {
  it('shares the folder fsync among puts finishing together, and every put still lands whole', async () => {
    const store = openStore(pathToFileURL(join(dir, 'store')).href, dir);
    await store.check();
    // FileHandle.sync is called only for folders (files get datasync).
    const probe = await open(dir, 'r');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const sync = vi.spyOn(proto, 'sync');

    const sources = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const path = join(dir, `src-${i}`);
        await writeFile(path, `content ${i}`);
        return path;
      }),
    );
    await Promise.all(sources.map((path, i) => store.put(`uploads/${i}.png`, path, { move: true })));
    await Promise.all(Array.from({ length: 5 }, (_, i) => store.put(`uploads/s${i}.png`, Readable.from([Buffer.from(`stream ${i}`)]))));

    expect(sync.mock.calls.length).toBeGreaterThan(0);
    expect(sync.mock.calls.length).toBeLessThan(25);
    const names = await readdir(join(dir, 'store', 'uploads'));
    expect(names).toHaveLength(25);
    for (let i = 0; i < 20; i++) expect((await store.stat(`uploads/${i}.png`))?.size).toBe(`content ${i}`.length);
  });

  it('syncs a moved file unless the caller says it is synced already', async () => {
    const store = openStore(pathToFileURL(join(dir, 'store')).href, dir);
    const probe = await open(dir, 'r');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const datasync = vi.spyOn(proto, 'datasync');
    await writeFile(join(dir, 'a'), 'a');
    await store.put('uploads/a.png', join(dir, 'a'), { move: true });
    expect(datasync).toHaveBeenCalledTimes(1);
    await writeFile(join(dir, 'b'), 'bb');
    const put = await store.put('uploads/b.png', join(dir, 'b'), { move: true, synced: true });
    expect(datasync).toHaveBeenCalledTimes(1);
    expect(put.size).toBe(2);
    expect(put.etag).toBe((await store.stat('uploads/b.png'))?.etag);
    expect(await readdir(dir)).not.toContain('b');
  });
});
