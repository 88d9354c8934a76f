/**
 * The reference image of a task on each ComfyUI server: uploaded the first time an image of it runs
 * there, then named from memory. Shared by images that start together, so each server gets one upload.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { ComfyBackend } from '../comfyui/backend.js';
import type { Db } from '../db/database.js';
import { findUpload } from '../db/uploads.js';
import type { BlobStore } from '../storage/blob-store.js';

/**
 * Largest reference read on the event loop rather than the thread pool. The pool has 4 threads and
 * uploads arriving with the tasks queue their fsyncs there: a read behind them held the first
 * prompt on each server 14 ms (up to 126 ms on a loaded machine) in the GPU-feed bench, where
 * reading a file just written (in the page cache) of this size takes well under a millisecond.
 */
const SYNC_READ_BYTES = 2 * 1024 * 1024;

export class ReferenceCache {
  /** Server url -> sha256 -> its name there. */
  private readonly names = new Map<string, Map<string, Promise<string>>>();
  /** sha256 -> its file name and bytes while uploads of it are starting: servers share one read. */
  private readonly reading = new Map<string, Promise<{ name: string; data: Buffer }>>();

  /** @param store where uploads are stored (any replica reads the same) */
  constructor(
    private readonly db: Db,
    private readonly store: BlobStore,
  ) {}

  /** The name of the upload with `sha256` on `server`, uploading it there the first time. */
  nameOn(server: ComfyBackend, sha256: string | null): Promise<string> {
    if (!sha256) return Promise.reject(new Error('the task has no reference image'));
    let names = this.names.get(server.url);
    if (!names) this.names.set(server.url, (names = new Map()));
    let name = names.get(sha256);
    if (!name) {
      name = this.upload(server, sha256);
      names.set(sha256, name);
      name.catch(() => names.delete(sha256));
    }
    return name;
  }

  /** Forgets what a server holds (it went down: a restarted ComfyUI may have lost its inputs). */
  forget(url: string): void {
    this.names.delete(url);
  }

  private async upload(server: ComfyBackend, sha256: string): Promise<string> {
    const { name, data } = await this.load(sha256);
    // Never overwrite: another replica (whose cache does not know ours) may upload the same image while
    // a prompt is reading it, and ComfyUI rewrites a file in place. Without overwrite it compares the
    // content of a file of that name and keeps it; the name is the content hash, so it is the same one.
    const stored = await server.uploadImage(data, name);
    return stored.subfolder ? `${stored.subfolder}/${stored.name}` : stored.name;
  }

  /** The upload's file name and bytes, read once for the servers that ask together. */
  private load(sha256: string): Promise<{ name: string; data: Buffer }> {
    let loading = this.reading.get(sha256);
    if (!loading) {
      loading = (async () => {
        const upload = await findUpload(this.db, sha256);
        if (!upload) throw new Error(`the reference image ${sha256} is no longer stored`);
        return { name: upload.file_path.replace(/^.*[\\/]/, ''), data: await this.read(upload.file_path, upload.bytes) };
      })();
      this.reading.set(sha256, loading);
      // Only while the servers' first uploads start: the bytes are not kept in memory after.
      const forget = () => void (this.reading.get(sha256) === loading && this.reading.delete(sha256));
      loading.then(forget, forget);
    }
    return loading;
  }

  /** The stored bytes: straight from the file when the store is a folder here, else fetched, never more than `bytes`. */
  private async read(key: string, bytes: number): Promise<Buffer> {
    const missing = () => new Error(`the reference image ${key} is missing from storage (${this.store.location})`);
    if (this.store.localPath) {
      try {
        const path = this.store.localPath(key);
        return bytes <= SYNC_READ_BYTES ? readFileSync(path) : await readFile(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing();
        throw err;
      }
    }
    const stream = await this.store.get(key);
    if (!stream) throw missing();
    const chunks: Buffer[] = [];
    let received = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        received += chunk.length;
        // Uploads are immutable: more bytes than recorded means another object, not ours.
        if (received > bytes) throw new Error(`the reference image ${key} in storage is larger than the ${bytes} bytes recorded`);
        chunks.push(chunk);
      }
    } finally {
      stream.destroy();
    }
    return Buffer.concat(chunks, received);
  }
}
