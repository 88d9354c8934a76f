/**
 * RSS after a full garbage collection in a child process that loaded bench/gc-on-signal.mjs: what
 * its live objects hold, without the garbage a burst of work left behind. RSS read right after the
 * subscribers connected varied with where the collector happened to be (one row's rounds ranged
 * 0.35-1.71); read after a collection on both sides, the growth is what each subscriber keeps.
 */
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '../test/helpers/stack.js';
import { processMemory } from './process-memory.js';

/** A child's way to collect on demand: start it with `env`, then read `rss(pid)`; `dispose()` removes the acknowledgement file. */
export interface Collectable {
  /** `base` with the preload added to its NODE_OPTIONS and the acknowledgement file named. */
  env: Record<string, string>;
  /** Runs a full collection in `pid` and resolves with its RSS afterwards, bytes. */
  rss(pid: number): Promise<number>;
  dispose(): Promise<void>;
}

/** Makes a {@link Collectable} over the environment `base` (kept, NODE_OPTIONS extended). @default timeoutMs 10 000 */
export function collectable(base: Record<string, string> = {}, timeoutMs = 10_000): Collectable {
  const ackFile = join(tmpdir(), `kontext-bench-gc-${randomUUID()}`);
  const runs = async () => Number(await readFile(ackFile, 'utf8').catch(() => '0'));
  return {
    env: { ...base, NODE_OPTIONS: [base.NODE_OPTIONS, '--import ./bench/gc-on-signal.mjs'].filter(Boolean).join(' '), GC_ACK_FILE: ackFile },
    async rss(pid) {
      const before = await runs();
      process.kill(pid, 'SIGUSR2');
      // A file caught mid-write reads as 0, never as a later run.
      await until(`process ${pid} to collect garbage (started with collectable().env?)`, async () => (await runs()) > before, timeoutMs);
      return (await processMemory(pid)).rss;
    },
    dispose: () => rm(ackFile, { force: true }),
  };
}
