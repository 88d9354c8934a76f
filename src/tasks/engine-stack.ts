/**
 * The engine with what it runs on: the worker pool over the configured ComfyUI servers, the
 * progress bus and the signals between replicas (in-process, or over Redis with REDIS_URL) and the
 * engine itself, wired the one way the service (`app.ts`) and `kontext repair` both need.
 */
import type { Workflow } from '../comfyui/workflow.js';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import type { Logger } from '../log.js';
import type { BlobStore } from '../storage/blob-store.js';
import { TaskEngine, type EngineOptions } from './engine.js';
import { createMemoryProgressBus, type ProgressBus } from './progress-bus.js';
import { RedisChannels } from './redis-channels.js';
import { createRedisProgressBus } from './redis-progress-bus.js';
import { createRedisSignals } from './redis-signals.js';
import { createMemorySignals, type Signals } from './signals.js';
import { WorkerPool, type WorkerPoolOptions } from './worker-pool.js';
import { transitions as defaultTransitions } from './transitions/index.js';
import type { WebhookRecorder } from '../webhooks/recorder.js';
import { withWebhooks } from '../webhooks/with-webhooks.js';

/** Options of {@link createEngineStack}. */
export interface EngineStackOptions {
  db: Db;
  workflow: Workflow;
  config: Pick<Config, 'comfyuiUrls' | 'maxConcurrentTasks' | 'comfyuiTimeoutS' | 'taskCleanupDays' | 'keepImageMetadata' | 'outputFormat' | 'taskLeaseS' | 'redisUrl' | 'queuePolicy' | 'maxQueuedTasks'>;
  /** Absolute DATA_DIR. */
  dataDir: string;
  /** Where uploads and images live (STORAGE_URL); the caller opens, checks and closes it. */
  store: BlobStore;
  /** This replica's local temp folder, for downloads in progress. @default `dataDir`/tmp */
  tmpDir?: string;
  /** This process's name in task claims. */
  instance: string;
  log: Logger;
  /** Overrides of the engine's options (tests, repair). @default none */
  engine?: Partial<Omit<EngineOptions, 'db' | 'pool' | 'bus' | 'signals' | 'workflow' | 'dataDir' | 'store' | 'tmpDir' | 'instance' | 'log'>>;
  /** Writes webhook events in the transitions (WEBHOOK_URL, signed image URLs). @default the task's own webhooks only */
  webhooks?: WebhookRecorder;
  /** Overrides of the pool's options (tests). @default none */
  pool?: Partial<Omit<WorkerPoolOptions, 'workflow' | 'log' | 'beforeUp'>>;
}

/** The wired stack; start the pool, then the engine. */
export interface EngineStack {
  pool: WorkerPool;
  bus: ProgressBus;
  signals: Signals;
  engine: TaskEngine;
  /** The Redis connections, with REDIS_URL (for /health). */
  redis: RedisChannels | undefined;
  /** Closes the bus, the signals and their connections (after the engine and the pool stopped). */
  close(): Promise<void>;
}

/** Builds the pool, the bus, the signals and the engine for `config`; with REDIS_URL, checks that Redis answers. */
export async function createEngineStack(options: EngineStackOptions): Promise<EngineStack> {
  const { config, log } = options;
  // One pair of connections per process, shared by the frames and the signals.
  const redis = config.redisUrl ? new RedisChannels(config.redisUrl, { log, name: options.instance }) : undefined;
  try {
    await redis?.check();
  } catch (err) {
    await redis?.close();
    throw err;
  }
  const pool: WorkerPool = new WorkerPool(config.comfyuiUrls, {
    workflow: options.workflow,
    log,
    // A server back from a hang or an outage first loses the prompts that moved elsewhere meanwhile.
    beforeUp: (member): Promise<void> => engine.reconcileReturningWorker(member),
    ...options.pool,
  });
  const bus = redis ? createRedisProgressBus(redis) : createMemoryProgressBus();
  const signals = redis ? createRedisSignals(redis) : createMemorySignals();
  const engine: TaskEngine = new TaskEngine({
    db: options.db,
    pool,
    bus,
    signals,
    workflow: options.workflow,
    dataDir: options.dataDir,
    store: options.store,
    ...(options.tmpDir ? { tmpDir: options.tmpDir } : {}),
    maxConcurrentTasks: config.maxConcurrentTasks,
    imageTimeoutMs: config.comfyuiTimeoutS * 1000,
    cleanupDays: config.taskCleanupDays,
    keepImageMetadata: config.keepImageMetadata,
    outputFormat: config.outputFormat,
    leaseMs: config.taskLeaseS * 1000,
    queuePolicy: config.queuePolicy,
    maxQueuedTasks: config.maxQueuedTasks,
    instance: options.instance,
    log,
    ...options.engine,
    // On top of a test's wrapped transitions too: their state changes still record webhook events.
    ...(options.webhooks ? { transitions: withWebhooks(options.engine?.transitions ?? defaultTransitions, options.webhooks) } : {}),
  });
  return {
    pool,
    bus,
    signals,
    engine,
    redis,
    close: async () => {
      await bus.close();
      await signals.close();
      await redis?.close();
    },
  };
}
