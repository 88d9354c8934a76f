/**
 * The setup every child-process test file repeats: a fresh temporary folder per test and the
 * processes the test started, all SIGKILLed and the folder removed after it (even when the test
 * failed, so no service outlives its test). Kept apart from processes.ts, which the benchmarks
 * import outside vitest.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import type { Child } from './processes.js';

/** A test's folder and the children it tracks. */
export interface ProcessScope {
  /** This test's temporary folder (a new one for each test). */
  readonly dir: string;
  /** Waits for a started child and kills it after the test; a start that fails throws as before. */
  track<T extends Child>(start: Promise<T>): Promise<T>;
}

/** Registers the per-test hooks; call once at a test file's top level. `prefix` names the folders, e.g. 'kontext-proc-'. */
export function processScope(prefix: string): ProcessScope {
  let dir = '';
  const children: Child[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.kill('SIGKILL')));
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }); // a killed child's last writes may still land
  });
  return {
    get dir() {
      return dir;
    },
    async track<T extends Child>(start: Promise<T>): Promise<T> {
      const child = await start;
      children.push(child);
      return child;
    },
  };
}
