/**
 * An upload's bytes written to its file through two staging buffers taken from a pool shared by all
 * uploads: each chunk is copied as it arrives, one buffer fills while the other is written.
 *
 * Why copy: a chunk is the socket's own buffer (up to 64 KiB outside the JS heap). Held until a
 * write of the whole batch finished, many chunks outlived two young-generation collections and were
 * promoted with their memory; the old generation then filled every few batches of 20 uploads, and
 * V8 ran 3-6 full collections per batch that freed almost nothing (`--trace-gc`), ~50% more CPU
 * per batch for several batches. Copied at once (~0.02 ms per 64 KiB), a chunk dies young; the
 * staging buffers are never freed, only reused, so they add nothing to collect.
 */
import type { FileHandle } from 'node:fs/promises';

/** Bytes of one staging buffer: what one write takes at most. */
export const STAGE_BYTES = 256 * 1024;

/** Staging buffers kept for the next uploads; beyond this they are left to the GC. @default 64 (16 MiB) */
const POOL_LIMIT = 64;

const pool: Buffer[] = [];

function takeBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(STAGE_BYTES);
}

function giveBack(buffer: Buffer): void {
  if (pool.length < POOL_LIMIT) pool.push(buffer);
}

/** Buffers in the pool now (for tests). */
export function pooledStageBuffers(): number {
  return pool.length;
}

/** Writes appended bytes to `file` from offset 0 on, in order, through two pooled staging buffers. */
export class StagedWrites {
  #filling: Buffer | undefined = takeBuffer();
  #spare: Buffer | undefined = takeBuffer();
  #used = 0;
  /** The write of the other buffer, if one runs; settles with its buffer back as the spare. */
  #writing: Promise<void> | undefined;
  /** The first failed write: every later call rejects with it. */
  #failure: unknown;
  /** Abandoned: no write starts any more. */
  #stopped = false;
  #released = false;

  constructor(private readonly file: FileHandle) {}

  /** Copies `chunk` in; resolves once it is copied (after a running write, when both buffers are full). */
  async append(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#failure !== undefined) throw this.#failure;
      const filling = this.#filling;
      if (!filling) throw new Error('StagedWrites: append after the end');
      const n = chunk.copy(filling, this.#used, offset);
      this.#used += n;
      offset += n;
      if (this.#used === filling.length) await this.#rotate();
    }
  }

  /** Writes what is staged and waits for every write; the buffers go back to the pool. */
  async end(): Promise<void> {
    await this.#writing;
    if (this.#failure !== undefined) throw this.#failure;
    const filling = this.#filling;
    if (filling && this.#used > 0) await writeAll(this.file, filling.subarray(0, this.#used));
    this.#used = 0;
    this.#release();
  }

  /**
   * Gives up (a failed upload): waits for a running write, then returns the buffers, so none goes
   * back to the pool while the file system still reads it. Never rejects.
   */
  async abandon(): Promise<void> {
    this.#stopped = true;
    await this.#writing?.catch(() => undefined);
    this.#release();
  }

  /** Starts writing the full buffer once the other one is written; fills the other meanwhile. */
  async #rotate(): Promise<void> {
    await this.#writing;
    if (this.#failure !== undefined) throw this.#failure;
    // Checked after the wait: an append waiting here when the upload was given up starts nothing.
    if (this.#stopped) throw new Error('StagedWrites: abandoned');
    const full = this.#filling!;
    this.#filling = this.#spare;
    this.#spare = undefined;
    this.#used = 0;
    this.#writing = writeAll(this.file, full).then(
      () => void (this.#spare = full),
      (err: unknown) => {
        this.#failure = err;
        this.#spare = full;
      },
    );
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const buffer of [this.#filling, this.#spare]) if (buffer) giveBack(buffer);
    this.#filling = this.#spare = undefined;
  }
}

/** Writes all of `bytes`, again after a short write. */
async function writeAll(file: FileHandle, bytes: Buffer): Promise<void> {
  let rest = bytes;
  while (rest.length > 0) {
    const { bytesWritten } = await file.write(rest, 0, rest.length, null);
    rest = rest.subarray(bytesWritten);
  }
}
