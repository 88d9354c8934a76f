/**
 * `kontext images check`: every completed image recorded in the database has its file in the
 * store (DATA_DIR, or STORAGE_URL), readable, with the recorded size; result paths of the old
 * service's tasks point to files that exist. Replaces the old `test_image_access.py`.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { completedImages } from '../db/images.js';
import { legacyResultPaths, resultPaths } from '../db/tasks.js';
import type { BlobStore } from '../storage/blob-store.js';
import { parseCommandLine, type Command } from './command.js';
import { cliConfig, dataDirOf, openDataDir, openStorage, withDb, withStore } from './environment.js';
import { EXIT, printTable } from './output.js';

const USAGE = `Usage: kontext images check

Checks that every completed image recorded in the database has its file in DATA_DIR (or in
STORAGE_URL when it is set), that the
file is readable and has the recorded size, and that the result paths of tasks made by the old
service point to files that exist. Prints each problem (task, index, path, what is wrong) and a
summary line. Works with the service running or stopped.

Options:
  -h, --help    show this help

Exit codes: 0 no problems, 1 problems found (or no database in DATA_DIR), 2 usage error.`;

/** `kontext images check`. */
export const imagesCheckCommand: Command = {
  name: 'images check',
  usage: USAGE,
  async run(argv) {
    parseCommandLine(argv, { options: {} });
    const config = cliConfig();
    const dataDir = dataDirOf(config);
    return withDb(await openDataDir(config), async (db) => withStore(await openStorage(config), async (store) => {
      const problems: [task: string, index: string, path: string, problem: string][] = [];
      const images = await completedImages(db);
      for (const image of images) {
        if (!image.file_path) {
          problems.push([image.task_id, String(image.idx), '-', 'completed, but no file is recorded']);
          continue;
        }
        const { where, problem } = await checkStored(store, image.file_path, image.bytes);
        if (problem) problems.push([image.task_id, String(image.idx), where, problem]);
      }
      let legacyCount = 0;
      for (const task of await legacyResultPaths(db)) {
        for (const [index, recorded] of resultPaths(task.result_path).entries()) {
          legacyCount++;
          const problem = await checkLegacyPath(recorded, dataDir);
          if (problem) problems.push([task.id, String(index), recorded, `${problem} (result_path of a task of the old service)`]);
        }
      }
      if (problems.length) printTable(['TASK', 'INDEX', 'PATH', 'PROBLEM'], problems);
      const checked = `checked ${images.length} image${images.length === 1 ? '' : 's'}${legacyCount ? ` and ${legacyCount} legacy result path${legacyCount === 1 ? '' : 's'}` : ''}`;
      console.log(problems.length ? `${checked}: ${problems.length} problem${problems.length === 1 ? '' : 's'}` : `${checked}: all present and intact`);
      return problems.length ? EXIT.FAILURE : EXIT.OK;
    }));
  },
};

/** Checks a recorded image in the store: a folder store's file directly (readable too), another store's object by its size. */
async function checkStored(store: BlobStore, key: string, bytes: number | null): Promise<{ where: string; problem: string | undefined }> {
  try {
    if (store.localPath) {
      const path = store.localPath(key);
      return { where: path, problem: await checkFile(path, bytes) };
    }
    const stat = await store.stat(key);
    const where = `${store.location}/${key}`;
    if (!stat) return { where, problem: 'missing' };
    if (bytes !== null && stat.size !== bytes) return { where, problem: `${stat.size} bytes stored, ${bytes} recorded${stat.size < bytes ? ' (truncated)' : ''}` };
    return { where, problem: undefined };
  } catch (err) {
    if (err instanceof TypeError && err.message.startsWith('invalid storage key')) return { where: key, problem: 'not a valid storage key' };
    return { where: key, problem: `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
}

/** What is wrong with an image file, or undefined when it is fine. */
async function checkFile(path: string, bytes: number | null): Promise<string | undefined> {
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) return 'not a file';
    size = s.size;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'missing' : `cannot be read (${code ?? String(err)})`;
  }
  try {
    await access(path, constants.R_OK);
  } catch (err) {
    return `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  if (bytes !== null && size !== bytes) return `${size} bytes on disk, ${bytes} recorded${size < bytes ? ' (truncated)' : ''}`;
  return undefined;
}

/**
 * The old service's paths may be absolute or relative to where it ran: a relative one counts as
 * present when it exists below DATA_DIR or the working directory.
 */
async function checkLegacyPath(recorded: string, dataDir: string): Promise<string | undefined> {
  const candidates = isAbsolute(recorded) ? [recorded] : [join(dataDir, recorded), resolve(recorded)];
  let first: string | undefined;
  for (const candidate of candidates) {
    const problem = await checkFile(candidate, null);
    if (!problem) return undefined;
    first ??= problem;
  }
  return first;
}
