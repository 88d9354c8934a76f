/**
 * `GET /health` and `GET /ready`: what a load balancer and an operator need to see, from the worker
 * pool's regular checks (no request waits on ComfyUI).
 */
import type { ServerResponse } from 'node:http';
import type { TaskService } from '../tasks/task-service.js';
import type { WorkerPool } from '../tasks/worker-pool.js';
import { sendDetail, sendJson } from './respond.js';

/** What the health routes read. */
export interface HealthSources {
  pool: WorkerPool;
  service: TaskService;
  version: string;
  startedAt: number;
}

export async function handleHealth(res: ServerResponse, sources: HealthSources): Promise<void> {
  const comfyui = sources.pool.members.map((m) => ({
    url: m.url,
    reachable: m.healthy,
    queue: m.queue,
    device: m.device,
    last_error: m.lastError,
  }));
  let database: { ok: boolean; error?: string } = { ok: true };
  let queue = { pending: 0, processing: 0 };
  try {
    const counts = await sources.service.counts();
    queue = { pending: counts.pending, processing: counts.processing };
  } catch (err) {
    database = { ok: false, error: (err as Error).message };
  }
  const ok = database.ok && comfyui.every((w) => w.reachable);
  // 200 while work can be accepted: tasks wait in the durable queue until a worker answers.
  sendJson(res, database.ok ? 200 : 503, {
    status: ok ? 'ok' : 'degraded',
    comfyui,
    database,
    queue,
    version: sources.version,
    uptime_s: Math.round((Date.now() - sources.startedAt) / 1000),
  });
}

export function handleReady(res: ServerResponse, pool: WorkerPool): void {
  if (pool.members.some((m) => m.healthy)) sendJson(res, 200, { status: 'ready' });
  else sendDetail(res, 503, 'No ComfyUI worker is reachable');
}
