/**
 * The ComfyUI servers the engine runs images on. Each gets a health check (`/system_stats`) on a
 * timer and a check of the workflow against its `/object_info` when it first answers; only a
 * healthy server that can run the workflow is handed work. Each server takes at most `slots`
 * prompts at once: one running and one waiting in its own queue, so the GPU never idles between
 * images but cancellation and ordering stay ours.
 */
import { EventEmitter } from 'node:events';
import { ComfyWorker, type ComfyWorkerOptions } from '../comfyui/worker.js';
import { checkAgainstObjectInfo } from '../comfyui/workflow-check.js';
import type { Workflow } from '../comfyui/workflow.js';
import { silentLogger, type Logger } from '../log.js';

/** One server as the pool sees it. */
export interface PoolMember {
  url: string;
  worker: ComfyWorker;
  /** Answered its last health checks and can run the workflow. */
  healthy: boolean;
  /** Prompts we have on it now. */
  busy: number;
  /** Prompts running plus pending in its queue (all clients), from the last check. */
  queue: number | null;
  device: string | null;
  lastError: string | null;
  /** The workflow check passed (undefined: not checked yet). */
  workflowOk: boolean | undefined;
  failures: number;
}

/** Options of the pool. */
export interface WorkerPoolOptions {
  workflow: Workflow;
  /** Prompts given to one server at once. @default 2 */
  slots?: number;
  /** Time between health checks. @default 3000 */
  healthIntervalMs?: number;
  /** Failed checks in a row before a server counts as down. @default 2 */
  failuresBeforeDown?: number;
  /** Options of every ComfyWorker. @default ComfyWorker defaults with a 10 s HTTP timeout */
  worker?: ComfyWorkerOptions;
  log?: Logger;
}

export class WorkerPool extends EventEmitter<{ up: [member: PoolMember]; down: [member: PoolMember] }> {
  readonly members: PoolMember[];
  private readonly slots: number;
  private readonly healthIntervalMs: number;
  private readonly failuresBeforeDown: number;
  private readonly workflow: Workflow;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private stopped = false;

  constructor(urls: string[], options: WorkerPoolOptions) {
    super();
    this.slots = options.slots ?? 2;
    this.healthIntervalMs = options.healthIntervalMs ?? 3000;
    this.failuresBeforeDown = options.failuresBeforeDown ?? 2;
    this.workflow = options.workflow;
    this.log = options.log ?? silentLogger;
    this.members = urls.map((url) => ({
      url,
      worker: new ComfyWorker(url, { timeoutMs: 10_000, ...options.worker }),
      healthy: false,
      busy: 0,
      queue: null,
      device: null,
      lastError: 'not checked yet',
      workflowOk: undefined,
      failures: 0,
    }));
  }

  /** Connects to every server (a server that is down is retried in the background) and starts the checks. */
  async start(): Promise<void> {
    for (const m of this.members) m.worker.socket.on('close', () => void this.check(m));
    await Promise.all(this.members.map((m) => m.worker.start().catch(() => undefined)));
    await this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), this.healthIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await Promise.all(this.members.map((m) => m.worker.stop()));
  }

  /** The server with a free slot and the least work, marked busy by one; undefined when all are full. */
  acquire(preferred?: string): PoolMember | undefined {
    const free = this.members.filter((m) => m.healthy && m.busy < this.slots);
    const chosen = free.find((m) => m.url === preferred) ?? free.sort((a, b) => a.busy - b.busy)[0];
    if (chosen) chosen.busy++;
    return chosen;
  }

  /** Takes a slot on a given server regardless of health (re-attaching after a restart). */
  occupy(url: string): PoolMember | undefined {
    const m = this.get(url);
    if (m) m.busy++;
    return m;
  }

  release(member: PoolMember): void {
    member.busy = Math.max(0, member.busy - 1);
  }

  get(url: string): PoolMember | undefined {
    return this.members.find((m) => m.url === url);
  }

  /** Free slots on healthy servers. */
  freeSlots(): number {
    return this.members.filter((m) => m.healthy).reduce((n, m) => n + Math.max(0, this.slots - m.busy), 0);
  }

  /** Checks every server now. */
  async checkAll(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await Promise.all(this.members.map((m) => this.check(m)));
    } finally {
      this.checking = false;
    }
  }

  private async check(m: PoolMember): Promise<void> {
    if (this.stopped) return;
    const wasHealthy = m.healthy;
    try {
      const [stats, queue] = await Promise.all([m.worker.http.systemStats(), m.worker.http.getQueue()]);
      m.queue = queue.queue_running.length + queue.queue_pending.length;
      m.device = stats.devices[0]?.name ?? null;
      m.failures = 0;
      if (m.workflowOk === undefined) {
        const problems = checkAgainstObjectInfo(this.workflow, await m.worker.http.objectInfo());
        m.workflowOk = problems.length === 0;
        if (problems.length) {
          m.lastError = `cannot run workflow ${this.workflow.name}: ${problems.join('; ')}`;
          for (const problem of problems) this.log.error('ComfyUI worker cannot run the workflow', { worker: m.url, problem });
        }
      }
      if (m.workflowOk) {
        m.healthy = true;
        m.lastError = null;
      }
    } catch (err) {
      m.failures++;
      m.lastError = (err as Error).message;
      // A lost socket plus a failed check is enough: don't wait for more checks to move its work.
      if (m.failures >= this.failuresBeforeDown || !wasHealthy || !m.worker.isConnected) m.healthy = false;
    }
    if (this.stopped) return;
    if (m.healthy && !wasHealthy) {
      this.log.info('ComfyUI worker up', { worker: m.url, device: m.device });
      this.emit('up', m);
    } else if (!m.healthy && wasHealthy) {
      this.log.warn('ComfyUI worker down', { worker: m.url, error: m.lastError });
      this.emit('down', m);
    }
  }
}
