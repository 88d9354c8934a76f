/** A small disk of a test's own, to run out of room on: a tmpfs (the tests run as root, here and in CI). */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A mounted tmpfs. */
export interface SmallDisk {
  /** Where it is mounted. */
  path: string;
  /** Unmounts it and removes its folder. */
  dispose(): Promise<void>;
}

/** Mounts a tmpfs of `size` (mount's notation). @default size '24m' */
export async function smallDisk(size = '24m'): Promise<SmallDisk> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-disk-'));
  const path = join(dir, 'disk');
  await mkdir(path);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path]);
  return {
    path,
    dispose: async () => {
      execFileSync('umount', ['-l', path]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Fills the disk at `path` to its last block: one file written until ENOSPC (any other error is thrown), then small ones while room is left. */
export async function fillDisk(path: string): Promise<void> {
  const fd = await open(join(path, 'filler'), 'w');
  try {
    const chunk = Buffer.alloc(1024 * 1024);
    for (;;) await fd.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fd.close();
  }
  // Small writes may still fit in a last block: take that too.
  for (let i = 0; (await statfs(path)).bavail > 0 && i < 1000; i++) await writeFile(join(path, `f${i}`), Buffer.alloc(4096)).catch(() => undefined);
}

/** Gives back what {@link fillDisk} took. */
export async function emptyDisk(path: string): Promise<void> {
  for (const name of await readdir(path)) if (name === 'filler' || /^f\d+$/.test(name)) await rm(join(path, name));
}
