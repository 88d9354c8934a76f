/**
 * A whole service for tests: ComfyUI simulators and the real app on port 0, in a temp folder, with
 * small helpers to talk to it over real HTTP. Everything is torn down by `close()`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, type App, type AppOptions } from '../../src/app.js';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../simulator/server.js';
import { loadConfig, type Config } from '../../src/config.js';
import { makeImage } from './images.js';

export interface Stack {
  dir: string;
  sims: Simulator[];
  app: App;
  config: Config;
  /** Starts the app again on the same data (after `app.close()`). */
  restart(): Promise<App>;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Simulators to start. @default 1 */
  workers?: number;
  sim?: SimulatorOptions;
  config?: Partial<Config>;
  app?: AppOptions;
}

/** Fast timings for tests: quick ticks and health checks, a worker is down after one failed check. */
export const FAST: AppOptions = {
  engine: { tickMs: 100 },
  pool: { healthIntervalMs: 250, failuresBeforeDown: 1, worker: { pollMs: 200, silenceMs: 3000 } },
};

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-stack-'));
  const sims = await Promise.all(
    Array.from({ length: options.workers ?? 1 }, (_, i) => startSimulator({ port: 0, stepMs: 10, baseDir: join(dir, `comfyui-${i}`), ...options.sim })),
  );
  const config: Config = {
    ...loadConfig({}),
    host: '127.0.0.1',
    port: 0,
    dataDir: join(dir, 'data'),
    comfyuiUrls: sims.map((s) => s.url),
    ...options.config,
  };
  const appOptions = { ...FAST, ...options.app };
  const stack: Stack = {
    dir,
    sims,
    config,
    app: await startApp(config, appOptions),
    async restart() {
      stack.app = await startApp(config, appOptions);
      return stack.app;
    },
    async close() {
      await stack.app.close();
      await Promise.all(stack.sims.map((s) => s.close()));
      // Retried: a simulator closed mid-run (as a killed ComfyUI) may still finish writing an image in its folder.
      await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    },
  };
  return stack;
}

/** Fields of `POST /generate-image`, as strings like a form sends them. */
export type GenerateFields = Partial<Record<'description' | 'count' | 'size' | 'steps' | 'guidance' | 'seed' | 'idempotencyKey' | 'webhook' | 'webhook_events_filter', string>>;

/** Posts a generation request the way the old service's callers do. */
export async function postGenerate(baseUrl: string, fields: GenerateFields, image?: Buffer | null, fileName = 'ref.png'): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) form.set(k, v);
  const file = image === undefined ? await makeImage('png', 320, 240) : image;
  // Blob's typings (lib.dom, which Yoga's types pull in) want a plain ArrayBuffer; Node's Buffers from sharp/readFile are.
  if (file) form.set('referenceImage', new Blob([file as Uint8Array<ArrayBuffer>], { type: 'image/png' }), fileName);
  return fetch(`${baseUrl}/generate-image`, { method: 'POST', body: form });
}

/** The legacy task-status body. */
export interface TaskStatusBody {
  task_id: string;
  status: string;
  progress: number;
  images: string[];
  result_path: string[];
  error_message: string | null;
  queue_position: number | null;
  [key: string]: unknown;
}

export async function taskStatus(baseUrl: string, id: string): Promise<TaskStatusBody> {
  const res = await fetch(`${baseUrl}/api/task-status/${id}`);
  if (res.status !== 200) throw new Error(`task-status ${id}: ${res.status} ${await res.text()}`);
  return (await res.json()) as TaskStatusBody;
}

/** Polls until the task is in one of `statuses` (or the deadline passes, which fails the test). */
export async function waitForStatus(baseUrl: string, id: string, statuses: string[], timeoutMs = 20_000): Promise<TaskStatusBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const body = await taskStatus(baseUrl, id);
    if (statuses.includes(body.status)) return body;
    if (Date.now() > deadline) throw new Error(`task ${id} still ${body.status} (${body.progress}%) after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls a condition. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
