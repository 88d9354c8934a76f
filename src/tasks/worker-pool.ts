/**
 * The ComfyUI servers the engine runs images on. Each gets a health check (`/system_stats` and
 * `/queue`) on a timer and a check of the workflow against its `/object_info`: when it first
 * answers, whenever it comes back (its socket reconnects, or a check succeeds after failures) and
 * periodically while the workflow cannot run there (a model may have been installed since). Only
 * a healthy server that can run the workflow is handed work. Each server takes at most `slots`
 * prompts at once: one running and one waiting in its own queue, so the GPU never idles between
 * images but cancellation and ordering stay ours.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { ComfyBackend } from '../comfyui/backend.js';
import { ComfyWorker, type ComfyWorkerOptions } from '../comfyui/worker.js';
import { checkAgainstObjectInfo } from '../comfyui/workflow-check.js';
import type { Workflow } from '../comfyui/workflow.js';
import { silentLogger, type Logger } from '../log.js';

/** One server as the pool sees it; `B` is its backend (tests use an in-memory one). */
export interface PoolMember<B extends ComfyBackend = ComfyBackend> {
  url: string;
  worker: B;
  /** Gets work: reachable (within `failuresBeforeDown`), can run the workflow, and `beforeUp` done. */
  healthy: boolean;
  /** The last health check got a valid answer (false before the first one). */
  reachable: boolean;
  /** Prompts we have on it now. */
  busy: number;
  /** Prompts running plus pending in its queue (all clients), from the last check. */
  queue: number | null;
  device: string | null;
  lastError: string | null;
  /** The last workflow check passed (undefined: not checked yet). */
  workflowOk: boolean | undefined;
  failures: number;
}

/** Options of the pool. */
export interface WorkerPoolOptions<B extends ComfyBackend = ComfyBackend> {
  workflow: Workflow;
  /** Prompts given to one server at once. @default 2 */
  slots?: number;
  /** Time between health checks. @default 3000 */
  healthIntervalMs?: number;
  /** Failed checks in a row before a server counts as down. @default 2 */
  failuresBeforeDown?: number;
  /** Time between workflow checks of a server that cannot run the workflow (a model may have been installed). @default 30000 */
  workflowRecheckMs?: number;
  /**
   * Runs before a server that was down (or never up) gets work again, e.g. to clean its queue;
   * while it runs or if it throws, the server stays out of rotation and the next check tries again.
   * @default none
   */
  beforeUp?: (member: PoolMember<B>) => Promise<void>;
  /** Options of every ComfyWorker (unused with `backend`). @default ComfyWorker defaults with a 10 s HTTP timeout */
  worker?: ComfyWorkerOptions;
  /** Creates the backend of a URL (tests pass an in-memory one). @default a `ComfyWorker` with the `worker` options */
  backend?: (url: string) => B;
  log?: Logger;
}

/** What the logs report; each change is logged once. */
type MemberState = 'unchecked' | 'up' | 'failing' | 'down' | 'excluded' | 'preparing';

/** The pool's own bookkeeping per member. */
interface Tracking {
  state: MemberState;
  /** For 'excluded': the problems last logged, so a different problem is logged too. */
  loggedError: string | null;
  /** The check in progress; another request for a check while it runs sets `again`. */
  checking: Promise<void> | undefined;
  again: boolean;
  /** Check the workflow at the next successful check (first answer, reconnect, after failures). */
  workflowStale: boolean;
  workflowCheckedAt: number;
  /** `beforeUp` in progress. */
  preparing: Promise<void> | undefined;
  /** Incremented by every failed check: a `beforeUp` started before it is stale. */
  epoch: number;
  /** The last `beforeUp` failure logged, so repeated identical failures are logged once. */
  prepareError: string | null;
}

export class WorkerPool<B extends ComfyBackend = ComfyBackend> extends EventEmitter<{ up: [member: PoolMember<B>]; down: [member: PoolMember<B>] }> {
  readonly members: PoolMember<B>[];
  /** Prompts one server is given at once, by every replica together. */
  readonly slots: number;
  private readonly healthIntervalMs: number;
  private readonly failuresBeforeDown: number;
  private readonly workflowRecheckMs: number;
  private readonly beforeUp: ((member: PoolMember<B>) => Promise<void>) | undefined;
  /** How long start() waits for the first `beforeUp` runs: the HTTP timeout of the workers. */
  private readonly startWaitMs: number;
  private readonly workflow: Workflow;
  private readonly log: Logger;
  private readonly tracking = new Map<PoolMember<B>, Tracking>();
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private stopped = false;

  constructor(urls: string[], options: WorkerPoolOptions<B>) {
    super();
    this.slots = options.slots ?? 2;
    this.healthIntervalMs = options.healthIntervalMs ?? 3000;
    this.failuresBeforeDown = options.failuresBeforeDown ?? 2;
    this.workflowRecheckMs = options.workflowRecheckMs ?? 30_000;
    this.beforeUp = options.beforeUp;
    this.startWaitMs = options.worker?.timeoutMs ?? 10_000;
    this.workflow = options.workflow;
    this.log = options.log ?? silentLogger;
    // Without a factory B is a ComfyWorker; the compiler cannot tie the default type to the default value.
    const create = options.backend ?? ((url: string) => new ComfyWorker(url, { timeoutMs: 10_000, ...options.worker }) as unknown as B);
    this.members = urls.map((url) => ({
      url,
      worker: create(url),
      healthy: false,
      reachable: false,
      busy: 0,
      queue: null,
      device: null,
      lastError: 'not checked yet',
      workflowOk: undefined,
      failures: 0,
    }));
    for (const m of this.members) {
      this.tracking.set(m, {
        state: 'unchecked',
        loggedError: null,
        checking: undefined,
        again: false,
        workflowStale: true,
        workflowCheckedAt: 0,
        preparing: undefined,
        epoch: 0,
        prepareError: null,
      });
    }
  }

  /**
   * Connects to every server (a server that is down is retried in the background) and starts the
   * checks; servers that answer are in rotation when it resolves (their first `beforeUp` is awaited
   * for up to the workers' HTTP timeout).
   */
  async start(): Promise<void> {
    for (const m of this.members) {
      m.worker.on('disconnected', () => void this.check(m));
      // A reconnect may be a restarted ComfyUI with other models or nodes: check the workflow again.
      m.worker.on('reconnected', () => {
        this.track(m).workflowStale = true;
        void this.check(m);
      });
    }
    await Promise.all(this.members.map((m) => m.worker.start().catch(() => undefined)));
    await this.checkAll();
    // Servers that answered are in rotation when start() returns, also with a `beforeUp`; but a
    // hook that hangs must not hold up the service's start (it goes on in the background).
    const prepared = Promise.all(this.members.map((m) => this.track(m).preparing));
    await Promise.race([prepared, delay(this.startWaitMs, undefined, { ref: false })]);
    this.timer = setInterval(() => void this.checkAll(), this.healthIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await Promise.all(this.members.map((m) => m.worker.stop()));
  }

  /**
   * The server with a free slot and the least work, marked busy by one; undefined when all are full.
   * `skip`: servers found full meanwhile (other replicas' prompts). @default none
   */
  acquire(skip?: ReadonlySet<string>): PoolMember<B> | undefined {
    const chosen = this.members.filter((m) => m.healthy && m.busy < this.slots && !skip?.has(m.url)).sort((a, b) => a.busy - b.busy)[0];
    if (chosen) chosen.busy++;
    return chosen;
  }

  /** Takes a slot on a given server regardless of health (re-attaching after a restart). */
  occupy(url: string): PoolMember<B> | undefined {
    const m = this.get(url);
    if (m) m.busy++;
    return m;
  }

  release(member: PoolMember<B>): void {
    member.busy = Math.max(0, member.busy - 1);
  }

  get(url: string): PoolMember<B> | undefined {
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

  private track(m: PoolMember<B>): Tracking {
    return this.tracking.get(m) as Tracking;
  }

  /** One check at a time per server; a request during a check runs one more right after it. */
  private check(m: PoolMember<B>): Promise<void> {
    const t = this.track(m);
    if (t.checking) {
      t.again = true;
      return t.checking;
    }
    t.checking = (async () => {
      try {
        do {
          t.again = false;
          await this.checkOnce(m, t);
        } while (t.again && !this.stopped);
      } finally {
        t.checking = undefined;
      }
    })();
    return t.checking;
  }

  private async checkOnce(m: PoolMember<B>, t: Tracking): Promise<void> {
    if (this.stopped) return;
    let problems: string[] | undefined;
    let failure: Error | undefined;
    try {
      const { stats, queue } = await m.worker.health();
      m.queue = queue.queue_running.length + queue.queue_pending.length;
      m.device = stats.devices[0]?.name ?? null;
      const due = m.workflowOk === false && Date.now() - t.workflowCheckedAt >= this.workflowRecheckMs;
      if (t.workflowStale || m.workflowOk === undefined || due) {
        problems = checkAgainstObjectInfo(this.workflow, await m.worker.objectInfo());
      }
    } catch (err) {
      failure = err as Error;
    }
    if (this.stopped) return;
    // Read after the awaits: a `beforeUp` may have put the server into rotation meanwhile.
    const wasHealthy = m.healthy;
    if (failure) {
      t.epoch++;
      m.reachable = false;
      m.failures++;
      m.lastError = failure.message;
      // Whatever changed while it did not answer (a restart, a model removed) shows at the next answer.
      t.workflowStale = true;
      // A lost socket plus a failed check is enough: don't wait for more checks to move its work.
      if (m.failures >= this.failuresBeforeDown || !wasHealthy || !m.worker.isConnected) m.healthy = false;
    } else {
      if (problems) {
        t.workflowStale = false;
        t.workflowCheckedAt = Date.now();
        m.workflowOk = problems.length === 0;
      }
      m.reachable = true;
      m.failures = 0;
      if (!m.workflowOk) {
        m.healthy = false;
        if (problems?.length) m.lastError = `cannot run workflow ${this.workflow.name}: ${problems.join('; ')}`;
      } else if (wasHealthy) m.lastError = null;
      else if (!this.beforeUp) {
        m.healthy = true;
        m.lastError = null;
      } else this.prepare(m, t);
    }
    this.report(m, t);
    if (m.healthy && !wasHealthy) this.emit('up', m);
    else if (!m.healthy && wasHealthy) this.emit('down', m);
  }

  /** Runs `beforeUp` (once at a time) and puts the server into rotation when it succeeds. */
  private prepare(m: PoolMember<B>, t: Tracking): void {
    if (t.preparing || !this.beforeUp) return;
    const epoch = t.epoch;
    const hook = this.beforeUp;
    t.preparing = (async () => {
      try {
        await hook(m);
        t.prepareError = null;
        // Stale if the server stopped answering meanwhile: the next check prepares it again.
        if (this.stopped || t.epoch !== epoch || !m.reachable || !m.workflowOk || m.healthy) return;
        m.healthy = true;
        m.lastError = null;
        this.report(m, t);
        this.emit('up', m);
      } catch (err) {
        const message = `preparing the server failed: ${(err as Error).message}`;
        if (m.reachable && m.workflowOk) m.lastError = message;
        if (t.prepareError !== message) this.log.warn('ComfyUI worker not put back into rotation', { worker: m.url, error: message });
        t.prepareError = message;
      } finally {
        t.preparing = undefined;
      }
    })();
  }

  /** Logs a change of the server's state, once. */
  private report(m: PoolMember<B>, t: Tracking): void {
    const state: MemberState = !m.reachable
      ? m.healthy
        ? 'failing'
        : 'down'
      : m.workflowOk === false
        ? 'excluded'
        : m.healthy
          ? 'up'
          : 'preparing';
    const error = state === 'excluded' ? m.lastError : null;
    if (state === t.state && error === t.loggedError) return;
    const was = t.state;
    t.state = state;
    t.loggedError = error;
    const fields = { worker: m.url, was };
    switch (state) {
      case 'up':
        this.log.info('ComfyUI worker up', { ...fields, device: m.device });
        break;
      case 'failing':
        this.log.warn('ComfyUI worker did not answer its health check; still in rotation', { ...fields, error: m.lastError, failures: m.failures });
        break;
      case 'down':
        this.log.warn(was === 'unchecked' ? 'ComfyUI worker unreachable' : 'ComfyUI worker down', { ...fields, error: m.lastError });
        break;
      case 'excluded':
        this.log.error('ComfyUI worker cannot run the workflow; excluded until it can', { ...fields, error: m.lastError });
        break;
      case 'preparing':
        this.log.info('ComfyUI worker reachable; preparing it before it gets work', fields);
        break;
    }
  }
}
