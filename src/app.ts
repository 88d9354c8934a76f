/**
 * The service, assembled: database, workflow, worker pool, task engine, the service layer, and one
 * HTTP server for every interface. `main.ts` adds the command line and signals; tests call
 * `startApp` directly with port 0.
 */
import { readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { loadWorkflow, type Workflow } from './comfyui/workflow.js';
import { Authenticator } from './auth/authenticator.js';
import { loadSigningSecret, UrlSigner } from './auth/url-signer.js';
import type { Config } from './config.js';
import { openDatabase, type Db, type OpenDatabaseOptions } from './db/database.js';
import { DiskSpace } from './db/disk-space.js';
import { beat } from './db/heartbeats.js';
import { describeWriteError, isStorageUnavailable, WriteHealth } from './db/write-health.js';
import { LiveConnections, wantsEventStream } from './graphql/live-connections.js';
import { serveGraphQL } from './graphql/node-handler.js';
import { BusyTracker } from './metrics/busy-tracker.js';
import { observeEngine } from './metrics/engine-metrics.js';
import { routeLabel } from './metrics/http-route.js';
import { Metrics } from './metrics/metrics.js';
import { handleMetrics } from './rest/metrics.js';
import { attachGraphQLWs } from './graphql/ws.js';
import { createGraphQLServer, GRAPHQL_PATH } from './graphql/yoga.js';
import { createRequestGuard, sendRefusal } from './http/request-guard.js';
import { silentLogger, type Logger } from './log.js';
import { StartUpClosers } from './start-up-closers.js';
import type { BlobStore } from './storage/blob-store.js';
import { openStore } from './storage/open-store.js';
import { sendDetail, sendJson } from './rest/respond.js';
import { handleRest } from './rest/router.js';
import { TaskEngine, type EngineOptions } from './tasks/engine.js';
import { createEngineStack } from './tasks/engine-stack.js';
import type { ProgressBus } from './tasks/progress-bus.js';
import { TaskService } from './tasks/task-service.js';
import { WorkerPool, type WorkerPoolOptions } from './tasks/worker-pool.js';
import { VERSION } from './version.js';
import { createServiceWebhooks, type ServiceWebhooks, type WebhookOptions } from './webhooks/service-webhooks.js';

/** A running service. */
export interface App {
  /** Base URL, e.g. http://127.0.0.1:9000. */
  url: string;
  server: Server;
  db: Db;
  workflow: Workflow;
  pool: WorkerPool;
  engine: TaskEngine;
  bus: ProgressBus;
  service: TaskService;
  /** Where uploads and images live (STORAGE_URL, DATA_DIR by default). */
  store: BlobStore;
  /** Whether the database takes writes now (/ready). */
  writeHealth: WriteHealth;
  /** Who a request is, from its API key. */
  auth: Authenticator;
  /** Signs image URLs. */
  signer: UrlSigner;
  /** The Prometheus metrics GET /metrics serves. */
  metrics: Metrics;
  /** The webhook recorder, deliverer and target policy. */
  webhooks: ServiceWebhooks;
  /** Stops accepting, leaves ComfyUI work for the next start, closes everything. */
  close(): Promise<void>;
}

/** Knobs for tests and embedding; production uses the defaults. */
export interface AppOptions {
  log?: Logger;
  /** This instance's name for task claims. @default the host name */
  instance?: string;
  engine?: Partial<Pick<EngineOptions, 'tickMs' | 'leaseMs' | 'maxAttempts' | 'previewIntervalMs' | 'cleanupIntervalMs' | 'transitions'>>;
  pool?: Partial<Pick<WorkerPoolOptions, 'healthIntervalMs' | 'failuresBeforeDown' | 'slots' | 'worker' | 'workflowRecheckMs'>>;
  onQuery?: OpenDatabaseOptions['onQuery'];
  /** Longest wait of a write for another process's database lock, in ms. @default 5000 */
  busyTimeoutMs?: number;
  /** Time between probe writes while the database cannot be written, in ms. @default 1000 */
  writeProbeMs?: number;
  /** Webhook knobs (the resolver of the target checks, retry and poll times). @default production values */
  webhooks?: WebhookOptions;
}

/**
 * Starts the service; rejects with a readable error when it cannot, having closed whatever it had
 * opened (database, store, port, connections to ComfyUI).
 */
export async function startApp(config: Config, options: AppOptions = {}): Promise<App> {
  const log = options.log ?? silentLogger;
  return new StartUpClosers(log).run((closers) => assemble(config, options, log, closers));
}

/** startApp's steps; each part it opens is deferred to `closers`, which close them if a later step fails. */
async function assemble(config: Config, options: AppOptions, log: Logger, closers: StartUpClosers): Promise<App> {
  // libvips keeps files it read open in a cache; we read each once, and a deleted file must free its space.
  sharp.cache({ files: 0 });
  const dataDir = resolve(config.dataDir);
  const workflow = await loadWorkflow(config.workflow);
  const instance = options.instance ?? config.instanceId ?? hostname();
  const writeHealth = new WriteHealth(options.writeProbeMs !== undefined ? { probeIntervalMs: options.writeProbeMs } : {});
  writeHealth.on('change', (ok, error) =>
    ok ? log.info('the database takes writes again') : log.error('the database cannot be written; /ready answers 503 until it can', { error }),
  );
  const db = await openDatabase({
    // PostgreSQL when DATABASE_URL is set (several replicas share it), SQLite in DATA_DIR otherwise.
    ...(config.databaseUrl ? { url: config.databaseUrl } : { file: join(dataDir, 'kontext.db') }),
    health: writeHealth,
    ...(options.busyTimeoutMs !== undefined && !config.databaseUrl ? { busyTimeoutMs: options.busyTimeoutMs } : {}),
    ...(options.onQuery ? { onQuery: options.onQuery } : {}),
  });
  closers.defer('the database', () => db.destroy());
  closers.defer('the write probe', () => writeHealth.stop());
  writeHealth.setProbe(() => beat(db, instance, new Date().toISOString()));
  // A bad STORAGE_URL (unknown scheme, missing bucket, unwritable folder) stops the start with its one
  // line; checked after the database, whose message for an unusable DATA_DIR is the established one.
  // Uploads and downloads are received here, then moved into the store. One folder per replica, so a
  // replica starting next to another on the same DATA_DIR sweeps only what its own crash left.
  const tmpDir = join(dataDir, 'tmp', instance.replace(/[^A-Za-z0-9_-]/g, '_'));
  const store = openStore(config.storageUrl, dataDir, { tmpDir });
  closers.defer('the store', () => store.close());
  await store.check();
  await rm(tmpDir, { recursive: true, force: true });
  // Where earlier versions received uploads.
  await sweepPartialUploads(join(dataDir, 'uploads'));
  // Before the engine: webhook bodies written in its transitions carry signed image URLs.
  const signer = new UrlSigner(await loadSigningSecret(db, config.urlSigningSecret), config.imageUrlTtlS);
  // Set once the server listens: the base of webhook image URLs when PUBLIC_URL is not set.
  let url = '';
  // Counted once the metrics exist (they are made after the engine).
  let countDelivery: (outcome: string) => void = () => undefined;
  const webhooks = createServiceWebhooks({
    db,
    config,
    urlSigner: signer,
    dataDir,
    instance,
    ownUrl: () => url,
    userAgent: `kontext-gateway/${VERSION}`,
    onAttempt: (outcome) => countDelivery(outcome),
    log,
    ...(options.webhooks ? { options: options.webhooks } : {}),
  });
  closers.defer('the webhooks', () => webhooks.close());
  const stack = await createEngineStack({
    db,
    workflow,
    config,
    dataDir,
    store,
    tmpDir,
    instance,
    log,
    webhooks: webhooks.recorder,
    ...(options.engine ? { engine: options.engine } : {}),
    ...(options.pool ? { pool: options.pool } : {}),
  });
  closers.defer('the progress bus and signals', () => stack.close());
  const { pool, bus, engine } = stack;
  const service = new TaskService({
    db,
    engine,
    bus,
    dataDir,
    store,
    tmpDir,
    maxFileSize: config.maxFileSize,
    maxImagePixels: config.maxImagePixels,
    workflowName: workflow.name,
    webhookTargets: webhooks.policy,
  });
  // Keys are checked against the database (cached briefly); the signing secret is shared through it too.
  const auth = new Authenticator({ db, onTouchError: (err) => log.warn('could not record the last use of an API key', { error: String(err) }) });
  const startedAt = Date.now();
  const rest = {
    auth,
    signer, service, pool, maxFileSize: config.maxFileSize, publicUrl: config.publicUrl, version: VERSION, startedAt, healthDetails: config.healthDetails, writeHealth, diskSpace: new DiskSpace(dataDir), replica: { instance, database: config.databaseUrl ? ('postgres' as const) : ('sqlite' as const), redis: stack.redis } };
  const yoga = createGraphQLServer({
    service,
    auth,
    signer,
    maxFileSize: config.maxFileSize,
    publicUrl: config.publicUrl,
    corsOrigins: config.corsOrigins,
    graphiql: config.graphiql,
    log,
  });
  // Origin and Host, decided once for every route and the WebSocket upgrade.
  const guard = createRequestGuard(config);
  const live = new LiveConnections(config.maxLiveConnections);
  let sseOpen = 0;
  const busy = new BusyTracker(pool);
  const metrics = new Metrics({
    taskCounts: async () => {
      const counts = await service.counts();
      return { pending: counts.pending, processing: counts.processing };
    },
    workers: () => pool.members.map((m) => ({ url: m.url, up: m.healthy, busyRatio: busy.ratio(m.url) })),
    subscribers: () => ({ ws: live.open - sseOpen, sse: sseOpen }),
  });
  countDelivery = (outcome) => metrics.webhookDeliveries.inc({ outcome });
  const stopObserving = observeEngine(engine.events, metrics, db, (err) => log.warn('a metric could not be read', { error: String(err) }));
  closers.defer('the engine metrics', stopObserving);

  // Until recovery has run, requests are refused: a task taken now would be mistaken for one a previous run left.
  let accepting = false;
  const server = createServer((req, res) => {
    const started = Date.now();
    res.on('finish', () => {
      const ms = Date.now() - started;
      log.info('request', { method: req.method, path: req.url, status: res.statusCode, ms });
      metrics.httpDuration.observe({ route: routeLabel(req.url), method: methodLabel(req.method), status: String(res.statusCode) }, ms / 1000);
    });
    const refusal = guard(req);
    if (refusal) {
      req.resume();
      sendRefusal(res, refusal, isGraphQLPath(req.url) ? 'graphql' : 'rest');
      return;
    }
    if (!accepting && pathOf(req.url) !== '/health') {
      res.setHeader('retry-after', '1');
      sendDetail(res, 503, 'The service is starting (recovering tasks, connecting to ComfyUI); try again in a moment');
      req.resume();
      return;
    }
    // /metrics has its own token (METRICS_TOKEN), not API keys: a Prometheus server is not a user.
    const handling =
      pathOf(req.url) === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')
        ? handleMetrics(req, res, metrics, config.metricsToken).then(() => true)
        : // REST first: Yoga's own health check would answer any path ending in /health.
          handleRest(req, res, rest);
    handling
      .then(async (handled) => {
        if (handled) return;
        if (!isGraphQLPath(req.url)) sendDetail(res, 404, 'Not Found');
        // SSE streams count against MAX_LIVE_CONNECTIONS with the WebSockets, until the response closes.
        else if (wantsEventStream(req) && !live.tryHold(res)) sendJson(res, 503, { errors: [{ message: live.refusal, extensions: { code: 'TOO_MANY_CONNECTIONS' } }] });
        else {
          if (wantsEventStream(req)) {
            sseOpen++;
            res.once('close', () => sseOpen--);
          }
          await serveGraphQL(yoga, req, res);
        }
      })
      .catch((err: unknown) => {
        if (isStorageUnavailable(err)) {
          // A full disk or a locked database: the request was fine, the service will be again.
          log.warn('request refused: storage unavailable', { method: req.method, path: req.url, error: describeWriteError(err) });
          if (!res.headersSent) {
            res.setHeader('retry-after', '5');
            return sendDetail(res, 503, `The service cannot store data right now: ${describeWriteError(err)}`);
          }
        } else {
          log.error('request failed', { method: req.method, path: req.url, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
        }
        if (!res.headersSent) sendDetail(res, 500, 'Internal Server Error');
        else res.destroy();
      });
  });
  // BODY_TIMEOUT: Node counts from a request's first byte until its body arrived in full, so a
  // trickling or stalled body is cut (408, connection closed) while requests already received
  // (WebSocket upgrades, SSE streams, slow image downloads) are never touched. Checked every few
  // seconds instead of Node's 30; the interval is read when the server starts listening.
  server.requestTimeout = config.bodyTimeoutS * 1000;
  server.headersTimeout = Math.min(server.headersTimeout, server.requestTimeout);
  Object.assign(server, { connectionsCheckingInterval: Math.min(5_000, server.requestTimeout / 4) });
  await listen(server, config.port, config.host);
  closers.defer('the HTTP server', () => {
    const closed = new Promise<void>((done) => server.close(() => done()));
    server.closeAllConnections();
    return closed;
  });
  const graphqlWs = attachGraphQLWs(server, { yoga, auth, guard, live, accepting: () => accepting, maxSubscriptionsPerSocket: config.maxSubscriptionsPerSocket, log });
  closers.defer('the WebSocket server', () => graphqlWs.dispose());
  const { port } = server.address() as AddressInfo;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // Closed as close() does: the engine stops, then the pool (which ends the runs), then the runs settle.
  closers.defer('the image runs', () => engine.idle());
  closers.defer('the worker pool', () => pool.stop());
  await pool.start();
  closers.defer('the engine', () => engine.stop());
  await engine.start();
  webhooks.deliverer.start();
  busy.start();
  closers.defer('the busy tracker', () => busy.stop());
  accepting = true;
  if ((await auth.mode()) === 'open' && !isLoopback(config.host)) {
    log.warn(
      `no API key exists: anyone who reaches ${config.host}:${(server.address() as AddressInfo).port} can start work on the GPUs and see every task; create a key with "kontext keys create --name NAME" to require keys`,
    );
  }

  let closing: Promise<void> | undefined;
  return {
    url,
    server,
    db,
    workflow,
    pool,
    engine,
    bus,
    service,
    store,
    writeHealth,
    auth,
    signer,
    metrics,
    webhooks,
    close: () =>
      (closing ??= (async () => {
        // Subscriptions end with a proper close frame, before the HTTP server drops every socket.
        await graphqlWs.dispose();
        busy.stop();
        stopObserving();
        const closed = new Promise<void>((done) => server.close(() => done()));
        server.closeIdleConnections();
        await engine.stop();
        await pool.stop();
        await engine.idle();
        // After the engine: its last transitions may have woken the deliverer.
        await webhooks.close();
        server.closeAllConnections();
        await closed;
        await stack.close();
        writeHealth.stop();
        await db.destroy();
        store.close();
      })()),
  };
}

/** An HTTP method as a metric label: the standard ones, `other` for anything a client made up. */
function methodLabel(method: string | undefined): string {
  return method && ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'].includes(method) ? method : 'other';
}

/** Whether `host` is only reachable from this machine. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The path of a request URL, without its query. */
function pathOf(url: string | undefined): string {
  return (url ?? '/').split('?', 1)[0]!;
}

/** `/graphql` and anything under it belongs to Yoga. */
function isGraphQLPath(url: string | undefined): boolean {
  const path = pathOf(url);
  return path === GRAPHQL_PATH || path.startsWith(`${GRAPHQL_PATH}/`);
}

/** Removes uploads a crash cut short (finished uploads are renamed to their hash, so these are never in use). */
async function sweepPartialUploads(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith('.upload-')).map((n) => rm(join(dir, n), { force: true })));
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`port ${port} on ${host} is already in use; set PORT to another port`)
          : err.code === 'EACCES'
            ? new Error(`no permission to listen on ${host}:${port}; use a port above 1023`)
            : err,
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolvePromise();
    });
  });
}
