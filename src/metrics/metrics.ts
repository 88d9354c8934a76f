/**
 * The service's Prometheus metrics (prom-client), in one registry per app so tests can run several
 * services in one process. Counters and histograms are moved by observers of the engine's events and
 * of HTTP responses; gauges are read when scraped, from whatever holds the number.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Where the scraped gauges come from. */
export interface MetricSources {
  /** Pending and processing tasks (of every replica: they share the database). */
  taskCounts(): Promise<{ pending: number; processing: number }>;
  /** Each ComfyUI server: whether it gets work, and the fraction of the last minute it had work of ours. */
  workers(): { url: string; up: boolean; busyRatio: number }[];
  /** Live subscribers of this replica, per transport. */
  subscribers(): { ws: number; sse: number };
}

/** Seconds buckets for a task (created to final) and an image (submitted to ready). */
const DURATION_BUCKETS = [1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600];
/** Seconds buckets for HTTP requests. */
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Every metric of the service; see the module comment. */
export class Metrics {
  readonly registry = new Registry();
  readonly tasksTotal: Counter<'status'>;
  readonly imagesTotal: Counter<'status'>;
  readonly taskDuration: Histogram;
  readonly imageDuration: Histogram;
  readonly webhookDeliveries: Counter<'outcome'>;
  readonly httpDuration: Histogram<'route' | 'method' | 'status'>;

  /** @param defaults also collect the process's default metrics (CPU, memory, event loop lag). @default true */
  constructor(sources: MetricSources, defaults = true) {
    const registers = [this.registry];
    // Both task gauges read one count per scrape (they collect one after the other).
    let counting: Promise<{ pending: number; processing: number }> | undefined;
    const taskCounts = () => (counting ??= sources.taskCounts().finally(() => setImmediate(() => (counting = undefined))));
    if (defaults) collectDefaultMetrics({ register: this.registry });
    this.tasksTotal = new Counter({ name: 'kontext_tasks_total', help: 'Tasks that ended, by final status.', labelNames: ['status'], registers });
    this.imagesTotal = new Counter({ name: 'kontext_images_total', help: 'Images that ended, by status (completed or failed).', labelNames: ['status'], registers });
    this.taskDuration = new Histogram({ name: 'kontext_task_duration_seconds', help: 'Time from a task being created to its final status.', buckets: DURATION_BUCKETS, registers });
    this.imageDuration = new Histogram({ name: 'kontext_image_duration_seconds', help: "Time from an image's prompt being submitted to the image being stored.", buckets: DURATION_BUCKETS, registers });
    this.webhookDeliveries = new Counter({ name: 'kontext_webhook_deliveries_total', help: 'Webhook delivery attempts, by outcome.', labelNames: ['outcome'], registers });
    this.httpDuration = new Histogram({
      name: 'kontext_http_request_duration_seconds',
      help: 'HTTP requests by route pattern, method and status.',
      labelNames: ['route', 'method', 'status'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'kontext_queue_depth',
      help: 'Pending tasks.',
      registers,
      async collect() {
        this.set((await taskCounts()).pending);
      },
    });
    new Gauge({
      name: 'kontext_tasks_processing',
      help: 'Tasks being processed.',
      registers,
      async collect() {
        this.set((await taskCounts()).processing);
      },
    });
    new Gauge({
      name: 'kontext_worker_up',
      help: 'Whether a ComfyUI server gets work (1) or not (0).',
      labelNames: ['worker'],
      registers,
      collect() {
        for (const w of sources.workers()) this.set({ worker: w.url }, w.up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'kontext_worker_busy_ratio',
      help: 'Fraction of the last minute a ComfyUI server had work of this replica.',
      labelNames: ['worker'],
      registers,
      collect() {
        for (const w of sources.workers()) this.set({ worker: w.url }, w.busyRatio);
      },
    });
    new Gauge({
      name: 'kontext_subscribers',
      help: 'Live progress subscribers of this replica, by transport.',
      labelNames: ['transport'],
      registers,
      collect() {
        const { ws, sse } = sources.subscribers();
        this.set({ transport: 'graphql-ws' }, ws);
        this.set({ transport: 'sse' }, sse);
      },
    });
  }

  /** The text a scrape gets, and its content type. */
  async scrape(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
