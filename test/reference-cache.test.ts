/**
 * The reference image on a ComfyUI server, as several replicas upload it: each replica's cache knows
 * only its own uploads, so the same image reaches one server more than once; the file a prompt may be
 * reading at that moment must not be rewritten.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../simulator/server.js';
import { ComfyWorker } from '../src/comfyui/worker.js';
import { openDatabase, type Db } from '../src/db/database.js';
import { saveUpload } from '../src/db/uploads.js';
import { FileStore } from '../src/storage/file-store.js';
import { ReferenceCache } from '../src/tasks/reference-cache.js';
import { storeUpload } from '../src/uploads/upload-sink.js';
import { makeImage } from './helpers/images.js';

let dir: string | undefined;
let sim: Simulator | undefined;
let db: Db | undefined;
const workers: ComfyWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await db?.destroy();
  await sim?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  db = sim = dir = undefined;
});

it('two replicas uploading one reference to one server: the same name, and the file written once', async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-refs-'));
  sim = await startSimulator({ port: 0, baseDir: join(dir, 'comfyui') });
  db = await openDatabase({ file: join(dir, 'data', 'kontext.db') });
  const stored = await storeUpload(Readable.from([await makeImage('png', 64, 48)]), { dir: join(dir, 'data', 'uploads'), maxBytes: 1_000_000 });
  await saveUpload(db, { sha256: stored.sha256, file_path: `uploads/${stored.fileName}`, bytes: stored.bytes, content_type: stored.contentType, width: 64, height: 48, created_at: new Date().toISOString() });
  const store = new FileStore(join(dir, 'data'));
  const replica = () => {
    const worker = new ComfyWorker(sim!.url);
    workers.push(worker);
    return { cache: new ReferenceCache(db!, store), worker };
  };
  const a = replica();
  const b = replica();
  const first = await a.cache.nameOn(a.worker, stored.sha256);
  const onServer = join(sim.baseDir, 'input', first);
  const before = await stat(onServer);
  await new Promise((r) => setTimeout(r, 20)); // a rewrite now would show in the modification time
  const second = await b.cache.nameOn(b.worker, stored.sha256);
  expect(second).toBe(first);
  const after = await stat(onServer);
  expect(after.mtimeMs).toBe(before.mtimeMs);
  expect(after.ino).toBe(before.ino);
});
