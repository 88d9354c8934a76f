/**
 * The reference image of a task on each ComfyUI server: uploaded the first time an image of it runs
 * there, then named from memory. Shared by images that start together, so each server gets one upload.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ComfyBackend } from '../comfyui/backend.js';
import type { Db } from '../db/database.js';
import { findUpload } from '../db/uploads.js';

export class ReferenceCache {
  /** Server url -> sha256 -> its name there. */
  private readonly names = new Map<string, Map<string, Promise<string>>>();

  /** @param dataDir absolute DATA_DIR, where uploads are stored */
  constructor(
    private readonly db: Db,
    private readonly dataDir: string,
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
    const upload = await findUpload(this.db, sha256);
    if (!upload) throw new Error(`the reference image ${sha256} is no longer stored`);
    const data = await readFile(join(this.dataDir, upload.file_path));
    const name = upload.file_path.replace(/^.*[\\/]/, '');
    // The name is the content hash, so overwriting can only write the same bytes (and avoids "name (1).png").
    const stored = await server.uploadImage(data, name, { overwrite: true });
    return stored.subfolder ? `${stored.subfolder}/${stored.name}` : stored.name;
  }
}
