/**
 * A {@link BlobStore} over a folder: DATA_DIR by default, or `STORAGE_URL=file:///path` (a volume
 * every replica mounts). An object is written to a temporary file next to its final name, synced,
 * then renamed over it, so a reader opens either the old file or the new one, whole; the folder is
 * synced too, so the new name survives a crash. A crash between the write and the rename leaves the
 * temporary `.part` file: `check()` (once at start) removes those old enough that no put of another
 * replica on the same folder can still be writing them.
 */
import { randomUUID } from 'node:crypto';
import { constants, type BigIntStats } from 'node:fs';
import { access, copyFile, mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { assertBlobKey } from './blob-key.js';
import type { BlobStat, BlobStore, GetOptions, PutOptions, PutResult } from './blob-store.js';
import { StorageError } from './storage-error.js';

/** Options of {@link FileStore}. */
export interface FileStoreOptions {
  /** The variable named in `check()` errors. @default 'STORAGE_URL' */
  variable?: string;
  /** Its value, as the user wrote it. @default the folder's file:// URL */
  value?: string;
  /** `check()` removes `.part` files older than this (by modification time) in the folder and the folders directly in it. @default 600000 (10 minutes) */
  partMaxAgeMs?: number;
}

/** The temporary name `put` writes to: `.<final name>.<uuid>.part`. */
const PART_NAME = /^\..+\.[0-9a-f-]{36}\.part$/;

export class FileStore implements BlobStore {
  readonly location: string;
  private readonly root: string;
  private readonly variable: string;
  private readonly value: string;
  private readonly partMaxAgeMs: number;

  /** @param root the folder; a relative path resolves against the working directory */
  constructor(root: string, options: FileStoreOptions = {}) {
    this.root = resolve(root);
    this.location = `file://${this.root}`;
    this.variable = options.variable ?? 'STORAGE_URL';
    this.value = options.value ?? this.location;
    this.partMaxAgeMs = options.partMaxAgeMs ?? 10 * 60_000;
  }

  async check(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
      await access(this.root, constants.R_OK | constants.W_OK | constants.X_OK);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new StorageError(this.variable, this.value, `cannot use the folder ${this.root} (${e.code ?? e.message})`, { cause: err });
    }
    await this.sweepParts();
  }

  /**
   * Removes stale `.part` files a crash left in the folder and the folders directly in it (uploads/;
   * a task's images/<task>/ goes with its task). Best effort: a sweep that fails never stops a start.
   */
  private async sweepParts(): Promise<void> {
    const before = Date.now() - this.partMaxAgeMs;
    const sweep = async (dir: string, depth: number): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      await Promise.all(
        entries.map(async (e) => {
          const path = join(dir, e.name);
          if (e.isDirectory() && depth > 0) return sweep(path, depth - 1);
          if (!e.isFile() || !PART_NAME.test(e.name)) return;
          const s = await stat(path).catch(() => undefined);
          if (s && s.mtimeMs < before) await unlink(path).catch(() => undefined);
        }),
      );
    };
    await sweep(this.root, 1);
  }

  close(): void {
    // Nothing is held open between calls.
  }

  localPath(key: string): string {
    assertBlobKey(key);
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, source: string | Readable, options: PutOptions = {}): Promise<PutResult> {
    const path = this.localPath(key);
    if (typeof source === 'string' && options.move) {
      const moved = await this.moveIntoPlace(source, path, options.synced ?? false);
      if (moved) return moved;
    }
    const tmp = join(dirname(path), `.${key.replace(/^.*\//, '')}.${randomUUID()}.part`);
    try {
      const written = await this.inFolder(path, () => writeSynced(source, tmp));
      await rename(tmp, path);
      await syncFolder(dirname(path));
      if (typeof source === 'string' && options.move) await unlink(source).catch(() => undefined);
      return written;
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable | undefined> {
    const path = this.localPath(key);
    let file;
    try {
      file = await open(path, 'r');
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
    const range = options.range;
    if (range) {
      // Read from the open file, so the range is checked against the very file we stream.
      const { size } = await file.stat().catch(async (err: unknown) => {
        await file.close();
        throw err;
      });
      if (range.start >= size || (range.end !== undefined && range.end < range.start)) {
        await file.close();
        throw new RangeError(`range ${range.start}-${range.end ?? ''} is outside ${key} (${size} bytes)`);
      }
    }
    // The stream closes the file when it ends or is destroyed.
    return file.createReadStream(range ? { start: range.start, ...(range.end !== undefined ? { end: range.end } : {}) } : {});
  }

  async stat(key: string): Promise<BlobStat | undefined> {
    try {
      const s = await stat(this.localPath(key), { bigint: true });
      return s.isFile() ? { size: Number(s.size), etag: etagOf(s), lastModified: s.mtime } : undefined;
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== undefined;
  }

  async deleteFolder(folder: string): Promise<void> {
    await rm(this.localPath(folder), { recursive: true, force: true });
  }

  async delete(key: string): Promise<void> {
    const path = this.localPath(key);
    try {
      await unlink(path);
    } catch (err) {
      if (!isAbsent(err)) throw err;
    }
    // Folders like images/<task>/ go with their last object, so a folder store needs no sweeping of
    // its own; a concurrent put into the folder re-creates it (see inFolder).
    for (let dir = dirname(path); dir.startsWith(this.root + sep); dir = dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        break;
      }
    }
  }

  /** Renames `source` to `path`; undefined when they are on different file systems (the caller copies). */
  private async moveIntoPlace(source: string, path: string, synced: boolean): Promise<PutResult | undefined> {
    // The caller may not have synced it: a crash must not leave a short file under a final name.
    if (!synced) await syncFile(source);
    try {
      await this.inFolder(path, () => rename(source, path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EXDEV') return undefined;
      throw err;
    }
    // Rename keeps the inode and the modification time, so the file's stat is the one it had. Taken
    // while the folder syncs: under load each waits its turn in the thread pool.
    const [s] = await Promise.all([stat(path, { bigint: true }), syncFolder(dirname(path))]);
    return { size: Number(s.size), etag: etagOf(s) };
  }

  /**
   * Runs `write`, creating the folder of `path` first when it is missing (at the first put into it,
   * or after a delete removed it meanwhile). Trying first saves a mkdir on every put.
   */
  private async inFolder<T>(path: string, write: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (err) {
        if (!isAbsent(err) || attempt === 3) throw err;
      }
      await mkdir(dirname(path), { recursive: true });
    }
  }
}

/** Copies a file or writes a stream to the new file `tmp`, synced to disk. */
async function writeSynced(source: string | Readable, tmp: string): Promise<PutResult> {
  if (typeof source === 'string') {
    // FICLONE shares the blocks where the file system can (btrfs, xfs) and copies otherwise.
    await copyFile(source, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
  }
  const file = await open(tmp, typeof source === 'string' ? 'r+' : 'wx');
  try {
    // Awaiting each write is the back-pressure: memory holds one chunk at a time.
    if (typeof source !== 'string') for await (const chunk of source) await file.write(chunk as Uint8Array);
    await file.datasync();
    const s = await file.stat({ bigint: true });
    // Rename keeps the inode and the modification time, so this is the ETag of the final file.
    return { size: Number(s.size), etag: etagOf(s) };
  } finally {
    await file.close();
  }
}

/** fdatasync of the file at `path`. */
async function syncFile(path: string): Promise<void> {
  const file = await open(path, 'r+');
  try {
    await file.datasync();
  } finally {
    await file.close();
  }
}

/** Inode, size and nanosecond mtime: files are replaced by rename, never rewritten, so any change shows. */
function etagOf(s: BigIntStats): string {
  return `"${s.ino.toString(36)}-${s.size.toString(36)}-${s.mtimeNs.toString(36)}"`;
}

/** Per folder: the fsync running now, and the one queued behind it (for renames made since it started). */
const folderSyncs = new Map<string, { running: Promise<void>; next?: Promise<void> }>();

/**
 * Makes the renames done so far in `dir` durable, sharing fsyncs: a call while one runs waits for
 * the next, which all such calls share (the running one may have missed their rename). Twenty
 * uploads finishing together cost two or three folder fsyncs, not twenty.
 */
function syncFolder(dir: string): Promise<void> {
  const state = folderSyncs.get(dir);
  if (!state) {
    const running: Promise<void> = fsyncFolder(dir).finally(() => folderSynced(dir, running));
    folderSyncs.set(dir, { running });
    return running;
  }
  // Queued behind the running one, so it starts after every rename made before this call.
  if (!state.next) {
    const next: Promise<void> = state.running.then(() => fsyncFolder(dir)).finally(() => folderSynced(dir, next));
    state.next = next;
  }
  return state.next;
}

/** The fsync `finished` of `dir` is done: the queued one becomes the running one. */
function folderSynced(dir: string, finished: Promise<void>): void {
  const state = folderSyncs.get(dir);
  if (state?.running !== finished) return;
  if (state.next) folderSyncs.set(dir, { running: state.next });
  else folderSyncs.delete(dir);
}

/** One fsync of a folder; not every platform can sync a folder, which is then left to the OS. */
async function fsyncFolder(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Windows cannot open a folder; some file systems refuse fsync on one (EINVAL).
  } finally {
    await handle?.close();
  }
}

function isAbsent(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
