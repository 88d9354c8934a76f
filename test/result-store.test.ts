/**
 * ResultStore against the simulator over real HTTP, into a folder store: a result arrives without
 * ComfyUI's text chunks, whole, and its bytes are flushed to disk once (by the store, as it moves
 * the file into place), not also as a download and again as a stripped copy.
 */
import { once } from 'node:events';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startSimulator, type Simulator } from '../simulator/server.js';
import type { FileRef } from '../src/comfyui/protocol.js';
import { ComfyWorker } from '../src/comfyui/worker.js';
import { FileStore } from '../src/storage/file-store.js';
import { ResultStore } from '../src/tasks/result-store.js';
import { kontextPrompt } from './helpers/kontext-prompt.js';

let dir: string;
let sim: Simulator;
let worker: ComfyWorker;
/** Downloads the simulator served (`GET /view`), all tests together. */
let views = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-result-store-'));
  sim = await startSimulator({
    port: 0,
    stepMs: 1,
    baseDir: join(dir, 'sim'),
    onRequest: (method, path) => {
      if (method === 'GET' && path.startsWith('/view?')) views++;
    },
  });
  worker = new ComfyWorker(sim.url);
  await worker.start();
});
afterAll(async () => {
  await worker.stop();
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

/** Counts flushes of regular files (folders are synced too, for renames) from now on. */
async function countFileFlushes(): Promise<{ count: () => number; restore: () => void }> {
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  let n = 0;
  const spies = (['sync', 'datasync'] as const).map((name) => {
    const original = proto[name];
    return vi.spyOn(proto, name).mockImplementation(async function (this: FileHandle) {
      if ((await this.stat()).isFile()) n++;
      return original.call(this);
    });
  });
  return { count: () => n, restore: () => spies.forEach((s) => s.mockRestore()) };
}

/** The path of the first download's temp file (`.*.part`) to appear in `folder`, within 5 s. */
async function partFileIn(folder: string): Promise<string> {
  for (const deadline = Date.now() + 5_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 5))) {
    const part = (await readdir(folder).catch(() => [])).find((name) => name.endsWith('.part'));
    if (part) return join(folder, part);
  }
  throw new Error(`no download's temp file appeared in ${folder}`);
}

/** Runs a prompt on the simulator; its output file. */
async function generated(): Promise<FileRef> {
  const png = await sharp({ create: { width: 96, height: 64, channels: 3, background: { r: 30, g: 90, b: 200 } } }).png().toBuffer();
  const { name } = await worker.uploadImage(png, 'result-store-ref.png', { overwrite: true });
  const result = await worker.run(crypto.randomUUID(), kontextPrompt(name), { outputNode: '136', timeoutMs: 30_000 });
  return result.images[0]!;
}

describe('ResultStore', () => {
  it('stores a result without its text chunks, flushing its bytes once', async () => {
    const file = await generated();
    const original = await readFile(join(dir, 'sim', 'output', file.subfolder, file.filename));
    expect(original.includes('tEXt')).toBe(true);

    const blobs = new FileStore(join(dir, 'data'));
    const results = new ResultStore(blobs, join(dir, 'tmp'), false);
    const flushes = await countFileFlushes();
    let stored;
    try {
      stored = await results.store(worker, 'task-1', 0, file);
    } finally {
      flushes.restore();
    }

    expect(flushes.count()).toBe(1);
    const kept = await readFile(join(dir, 'data', stored.file_path));
    expect(kept.includes('tEXt')).toBe(false);
    expect(stored.bytes).toBe(kept.length);
    const meta = await sharp(kept).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', stored.width, stored.height]);
    // The temp folder is left empty: the download and the stripped copy went into the store.
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
  });

  it('makes its temp folder again when it was removed since the last result', async () => {
    const results = new ResultStore(new FileStore(join(dir, 'data-2')), join(dir, 'tmp-2'), false);
    const file = await generated();
    const before = views;
    await results.store(worker, 'task-2', 0, file);
    await rm(join(dir, 'tmp-2'), { recursive: true });
    const stored = await results.store(worker, 'task-2', 1, file);
    expect((await sharp(join(dir, 'data-2', stored.file_path)).metadata()).width).toBe(stored.width);
    expect(await readdir(join(dir, 'tmp-2'))).toEqual([]);
    // Made again as the download created its file: each result downloaded once.
    expect(views - before).toBe(2);
  });

  it('does not download again when its temp file is removed before the download ends', async () => {
    const tmp = join(dir, 'tmp-3');
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toBuffer();
    // A ComfyUI whose /view sends half the image, removes the download's temp file (not its
    // folder: an ENOENT that is not a missing folder), then sends the rest.
    let served = 0;
    const comfy = createServer((_req, res) => {
      served++;
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length });
      res.write(png.subarray(0, png.length >> 1));
      void (async () => {
        await rm(await partFileIn(tmp));
        res.end(png.subarray(png.length >> 1));
      })().catch((err: unknown) => res.destroy(err as Error));
    });
    comfy.listen(0, '127.0.0.1');
    await once(comfy, 'listening');
    const server = new ComfyWorker(`http://127.0.0.1:${(comfy.address() as { port: number }).port}`);
    try {
      const results = new ResultStore(new FileStore(join(dir, 'data-3')), tmp, false);
      const file: FileRef = { filename: 'result.png', subfolder: '', type: 'output' };
      await expect(results.store(server, 'task-3', 0, file)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(served).toBe(1);
      expect(await readdir(tmp)).toEqual([]);
    } finally {
      await server.stop();
      comfy.closeAllConnections();
      await new Promise<void>((resolve) => comfy.close(() => resolve()));
    }
  });
});
