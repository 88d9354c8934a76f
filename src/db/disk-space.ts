/**
 * Free space on the disk that holds DATA_DIR (the SQLite database and uploads being received), for
 * /ready. A write that fails tells WriteHealth, but SQLite may go on succeeding for a while on a full
 * disk (it reuses pages of its write-ahead log), so /ready would still say 200; asking the file
 * system says it at once.
 */
import { statfs } from 'node:fs/promises';

/** Checks the free space under one folder. */
export class DiskSpace {
  /**
   * @param dir a folder on the disk to watch (DATA_DIR).
   * @param minFreeBytes below this the disk counts as full. @default 1 MiB
   */
  constructor(
    readonly dir: string,
    readonly minFreeBytes = 1024 * 1024,
  ) {}

  /** Why the disk cannot take writes, or undefined when it can (or cannot be asked: the writes will tell). */
  async problem(): Promise<string | undefined> {
    const stats = await statfs(this.dir).catch(() => undefined);
    if (!stats) return undefined;
    const free = stats.bavail * stats.bsize;
    return free < this.minFreeBytes ? `the disk holding ${this.dir} is full (${free} bytes free)` : undefined;
  }
}
