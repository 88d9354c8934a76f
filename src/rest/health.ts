/**
 * `GET /health` and `GET /ready`: what a load balancer and an operator need to see, from the worker
 * pool's regular checks (no request waits on ComfyUI). Anyone may ask, so the public form names no
 * internal URL and quotes no error; HEALTH_DETAILS=true adds them.
 */
import type { DiskSpace } from '../db/disk-space.js';
import type { ServerResponse } from 'node:http';
import type { Authenticator } from '../auth/authenticator.js';
import type { WriteHealth } from '../db/write-health.js';
import type { TaskService } from '../tasks/task-service.js';
import type { WorkerPool } from '../tasks/worker-pool.js';
import { sendDetail, sendJson } from './respond.js';

/** What the health routes read. */
export interface HealthSources {
  pool: WorkerPool;
  service: TaskService;
  /** Whether keys are required: shown as `auth`, `open` or `keys`. */
  auth: Authenticator;
  version: string;
  startedAt: number;
  /** Add each worker's URL, queue, device and last error, and the database's error (HEALTH_DETAILS). @default false */
  details?: boolean;
  /** Whether the database takes writes. @default undefined (not reported) */
  writeHealth?: WriteHealth;
  /** Which replica answers, on what: shown so an operator behind a load balancer can tell them apart. @default undefined (not reported) */
  replica?: ReplicaInfo;
}

/** A replica's identity and shared services. */
export interface ReplicaInfo {
  /** INSTANCE_ID (or the host name): this replica's name in task claims. */
  instance: string;
  database: 'sqlite' | 'postgres';
  /** REDIS_URL's connections; undefined when progress stays in-process. */
  redis: { readonly connected: boolean } | undefined;
}

/**
 * Status, version, uptime, the durable queue's counts, whether the database answers, and per
 * worker its index in COMFYUI_URL, `reachable` (its last health check answered) and `ready` (it
 * gets work: reachable and able to run the workflow), and `auth`: `open` while no API key exists,
 * `keys` from the first one on. `status` is `ok` only when the database and every worker are both.
 */
export async function handleHealth(res: ServerResponse, sources: HealthSources): Promise<void> {
  const details = sources.details ?? false;
  const comfyui = sources.pool.members.map((m, index) => ({
    index,
    reachable: m.reachable,
    ready: m.healthy,
    ...(details ? { url: m.url, queue: m.queue, device: m.device, last_error: m.lastError } : {}),
  }));
  const writable = sources.writeHealth?.ok ?? true;
  let database: { ok: boolean; writable: boolean; error?: string } = {
    ok: true,
    writable,
    ...(details && !writable ? { error: sources.writeHealth?.error ?? 'unknown' } : {}),
  };
  let queue = { pending: 0, processing: 0 };
  // Unknown only while the database does not answer (once keys exist, the mode is remembered).
  let auth: 'open' | 'keys' | 'unknown' = 'unknown';
  try {
    const counts = await sources.service.counts();
    queue = { pending: counts.pending, processing: counts.processing };
    auth = await sources.auth.mode();
  } catch (err) {
    // The message may name files and SQL: for operators only.
    database = details ? { ok: false, writable, error: (err as Error).message } : { ok: false, writable };
  }
  const redis = sources.replica?.redis ? { ok: sources.replica.redis.connected } : null;
  const ok = database.ok && writable && (redis?.ok ?? true) && comfyui.every((w) => w.reachable && w.ready);
  // 200 while work can be accepted: tasks wait in the durable queue until a worker answers.
  sendJson(res, database.ok ? 200 : 503, {
    status: ok ? 'ok' : 'degraded',
    comfyui,
    ...(sources.replica ? { instance: sources.replica.instance } : {}),
    database: sources.replica ? { ...database, dialect: sources.replica.database } : database,
    redis,
    queue,
    auth,
    version: sources.version,
    uptime_s: Math.round((Date.now() - sources.startedAt) / 1000),
  });
}

/** 200 when work can be taken and done: the database takes writes and some worker gets work. */
export async function handleReady(res: ServerResponse, pool: WorkerPool, writeHealth?: WriteHealth, disk?: DiskSpace): Promise<void> {
  const full = await disk?.problem();
  if (writeHealth && !writeHealth.ok) sendDetail(res, 503, `The database cannot be written: ${writeHealth.reason ?? 'unknown error'}`);
  else if (full) sendDetail(res, 503, `Nothing can be stored: ${full}`);
  else if (pool.members.some((m) => m.healthy)) sendJson(res, 200, { status: 'ready' });
  else sendDetail(res, 503, 'No ComfyUI worker is reachable');
}
