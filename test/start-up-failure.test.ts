/**
 * A start that fails leaves nothing open: not the port (it already listened), not the database,
 * not the connections to ComfyUI. The failure is injected after `listen` and after the worker pool
 * connected, in the engine's start-up recovery; and the closer stack itself keeps the start's error.
 */
import { createServer } from 'node:net';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { startApp } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import type { Logger } from '../src/log.js';
import { StartUpClosers } from '../src/start-up-closers.js';
import { transitions } from '../src/tasks/transitions/index.js';
import { startSimulator, type Simulator } from '../simulator/server.js';
import { closedPort } from './helpers/ports.js';
import { FAST, until } from './helpers/stack.js';

/** Network handles of this process (sockets and listening servers), by kind. */
function networkHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) if (/TCP|Pipe/.test(kind)) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

let dir: string;
let sim: Simulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
  await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
});

it('a start failing after listen and the pool connected closes the port, the database and the ComfyUI connections, and throws its own error', async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-start-fail-'));
  sim = await startSimulator({ port: 0, stepMs: 10, baseDir: join(dir, 'comfyui') });
  const config: Config = { ...loadConfig({}), host: '127.0.0.1', port: await closedPort(), dataDir: join(dir, 'data'), comfyuiUrls: [sim.url] };
  const before = networkHandles();
  let recoveryRan = false;
  const failing = {
    ...transitions,
    recoverTasks: () => {
      recoveryRan = true;
      return Promise.reject(new Error('injected: recovery failed'));
    },
  };
  await expect(startApp(config, { ...FAST, engine: { ...FAST.engine, transitions: failing } })).rejects.toThrow('injected: recovery failed');
  // The failure came after listen and the pool's start: there was something to close.
  expect(recoveryRan).toBe(true);

  // The port is free again.
  const probe = createServer().listen(config.port, config.host);
  await once(probe, 'listening');
  await new Promise<void>((done) => probe.close(() => done()));
  // No socket to ComfyUI (nor its server side) or server is left (closing ones go within a moment).
  await until('no more network handles than before the start', () => Object.entries(networkHandles()).every(([kind, n]) => n <= (before[kind] ?? 0)), 5000);
  // No connection holds the database: one in exclusive locking mode can write it.
  const file = new BetterSqlite3(join(config.dataDir, 'kontext.db'), { timeout: 0 });
  try {
    file.pragma('locking_mode = exclusive');
    file.exec('begin exclusive; create table start_up_probe (x); commit');
  } finally {
    file.close();
  }
  // And the same configuration starts.
  const app = await startApp(config, FAST);
  await app.close();
});

it('closes what was deferred, last first, logs a close that fails and keeps the start error', async () => {
  const closed: string[] = [];
  const warnings: string[] = [];
  const log: Logger = { debug: () => undefined, info: () => undefined, warn: (m) => warnings.push(m), error: () => undefined };
  const start = new StartUpClosers(log).run(async (closers) => {
    closers.defer('first', () => closed.push('first'));
    closers.defer('second', () => Promise.reject(new Error('cannot close')));
    closers.defer('third', async () => {
      await Promise.resolve();
      closed.push('third');
    });
    throw new Error('the start failed');
  });
  await expect(start).rejects.toThrow('the start failed');
  expect(closed).toEqual(['third', 'first']);
  expect(warnings).toEqual(['after the failed start, closing second failed too']);
});

it('closes nothing when the start succeeds', async () => {
  const closed: string[] = [];
  const log: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
  const value = await new StartUpClosers(log).run(async (closers) => {
    closers.defer('part', () => closed.push('part'));
    return 42;
  });
  expect(value).toBe(42);
  expect(closed).toEqual([]);
});
