/**
 * Configuration from the environment (and a `.env` file when present), with the old FastAPI
 * service's variable names, defaults and meaning. Invalid values are all reported at once, one
 * line each, naming the variable, the value and what is allowed.
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';

/** The service's settings, parsed and typed. */
export interface Config {
  /** Interface to listen on. @default '0.0.0.0' */
  host: string;
  /** Port for HTTP, GraphQL and WebSocket. @default 9000 */
  port: number;
  /** More logging. @default false */
  debug: boolean;
  /** ComfyUI servers (workers). @default ['http://127.0.0.1:8188'] */
  comfyuiUrls: string[];
  /** Longest wait for one image, in seconds. @default 300 */
  comfyuiTimeoutS: number;
  /** Largest accepted upload, in bytes. @default 10485760 */
  maxFileSize: number;
  /** Tasks processed at once. @default 3 */
  maxConcurrentTasks: number;
  /** Finished tasks older than this are deleted. @default 7 */
  taskCleanupDays: number;
  /** Database, uploads and images. @default './data' */
  dataDir: string;
  /** Base of absolute URLs in replies, e.g. https://gpu.example.com. @default undefined (relative URLs) */
  publicUrl: string | undefined;
  /**
   * Browser origins allowed besides the service's own; `'*'` allows any (the old service's
   * behaviour). A request whose `Origin` is neither gets 403. Never with credentials. @default []
   */
  corsOrigins: string[] | '*';
  /** Host names (`Host` header, without port) accepted besides loopback and PUBLIC_URL's (DNS rebinding). @default [] */
  allowedHosts: string[];
  /** Serve GraphiQL on GET /graphql in a browser. @default true */
  graphiql: boolean;
  /** /health shows worker URLs and errors to anyone (otherwise a short public form). @default false */
  healthDetails: boolean;
  /** Keep ComfyUI's workflow and prompt in the PNG metadata of served images. @default false */
  keepImageMetadata: boolean;
  /** Largest accepted reference image, width x height, checked before it is decoded. @default 16_777_216 */
  maxImagePixels: number;
  /** Seconds a request body may take to arrive in full (a trickling or stalled upload is cut). @default 120 */
  bodyTimeoutS: number;
  /** graphql-ws subscriptions at once on one socket. @default 100 */
  maxSubscriptionsPerSocket: number;
  /** graphql-ws sockets plus SSE streams open at once, in total. @default 10_000 */
  maxLiveConnections: number;
  /** A workflow binding file (or API prompt with a sibling binding). @default the built-in Flux Kontext workflow */
  workflow: string | undefined;
  /** PostgreSQL for tasks, images, uploads and the queue, `postgres://user@host:port/db`. @default undefined (SQLite at DATA_DIR/kontext.db) */
  databaseUrl: string | undefined;
  /** Redis for progress frames, cancel requests and wake-ups across replicas, `redis://host:port/db`. @default undefined (in-process) */
  redisUrl: string | undefined;
  /** Where uploads and images live: `file:///path` (a volume every replica mounts) or `s3://bucket/prefix`. @default undefined (DATA_DIR) */
  storageUrl: string | undefined;
  /** This replica's name in task claims; replicas on one host need distinct ids. @default undefined (the host name) */
  instanceId: string | undefined;
  /** Seconds a claim holds without renewal before another replica takes the task over. @default 30 */
  taskLeaseS: number;
  /** Secret for signed image URLs (32 characters or more), the same on every replica. @default undefined (one made at random and kept in the database) */
  urlSigningSecret: string | undefined;
  /** Seconds a signed image URL works after it was handed out (rounded up to 5 minutes, so URLs stay cacheable). @default 3600 */
  imageUrlTtlS: number;
  /** Pending tasks of all keys together beyond which every generate request gets 429. @default 1000 */
  maxQueuedTasks: number;
  /** `fair`: round-robin across API keys, higher priority first; `fifo`: oldest task first, as before keys existed. @default 'fair' */
  queuePolicy: 'fair' | 'fifo';
  /** Bearer token GET /metrics requires. @default undefined (the metrics are public) */
  metricsToken: string | undefined;
  /** Format images are stored in when ComfyUI's result is adopted. @default 'png' (ComfyUI's own) */
  outputFormat: 'png' | 'jpeg' | 'webp' | 'avif';
  /** Receives every task's webhook events, besides each task's own `webhook`. @default undefined */
  webhookUrl: string | undefined;
  /** Standard Webhooks secret, `whsec_<base64>`. @default undefined (one made at first start and kept in the database) */
  webhookSecret: string | undefined;
  /** Hours a webhook event is retried before it is given up. @default 24 */
  webhookRetryHours: number;
  /** Host names or IPs a webhook may target although they resolve to a loopback, private or link-local address. @default [] */
  webhookAllowHosts: string[];
}

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });
const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no', 'True', 'False'], { error: 'must be true or false' }).transform((v) => ['true', '1', 'yes', 'True'].includes(v));
const int = (min: number, max: number) => {
  const error = `must be a whole number from ${min} to ${max}`;
  return z.coerce.number({ error }).int(error).min(min, error).max(max, error);
};
const list = (item: z.ZodType<string>) =>
  z.string().transform((s, ctx) => {
    const parts = s.split(',').map((p) => p.trim()).filter(Boolean);
    for (const p of parts) {
      const r = item.safeParse(p);
      if (!r.success) ctx.addIssue({ code: 'custom', message: `'${p}' ${r.error.issues[0]?.message ?? 'is not valid'}` });
    }
    return parts;
  });

const EnvSchema = z.object({
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: int(0, 65535).default(9000),
  DEBUG: bool.default(false),
  COMFYUI_URL: list(httpUrl).refine((l) => l.length > 0, 'must list at least one ComfyUI URL').default(['http://127.0.0.1:8188']),
  COMFYUI_TIMEOUT: int(1, 86_400).default(300),
  MAX_FILE_SIZE: int(1024, 1024 ** 3).default(10_485_760),
  MAX_CONCURRENT_TASKS: int(1, 1000).default(3),
  TASK_CLEANUP_DAYS: int(0, 36_500).default(7),
  DATA_DIR: z.string().min(1).default('./data'),
  PUBLIC_URL: httpUrl.optional(),
  CORS_ORIGINS: z.union([z.literal('*'), list(httpUrl)]).default([]),
  ALLOWED_HOSTS: list(z.string().regex(/^[A-Za-z0-9.:[\]-]+$/, 'must be a host name')).default([]),
  GRAPHIQL: bool.default(true),
  HEALTH_DETAILS: bool.default(false),
  KEEP_IMAGE_METADATA: bool.default(false),
  MAX_IMAGE_PIXELS: int(256, 400_000_000).default(16_777_216),
  BODY_TIMEOUT: int(1, 3600).default(120),
  MAX_SUBSCRIPTIONS_PER_SOCKET: int(1, 10_000).default(100),
  MAX_LIVE_CONNECTIONS: int(1, 1_000_000).default(10_000),
  WORKFLOW: z.string().min(1).optional(),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// URL (leave it unset for SQLite in DATA_DIR)' }).optional(),
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' }).optional(),
  STORAGE_URL: z
    .string()
    .regex(/^(file:\/\/\/.+|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?)$/, 'must be file:///absolute/path or s3://bucket[/prefix]')
    .optional(),
  INSTANCE_ID: z.string().regex(/^[A-Za-z0-9._:/-]{1,128}$/, 'must be 1-128 letters, digits or . _ : / -').optional(),
  TASK_LEASE_S: int(5, 3600).default(30),
  URL_SIGNING_SECRET: z.string().min(32, 'must be at least 32 characters').max(1024, 'must be at most 1024 characters').optional(),
  IMAGE_URL_TTL_S: int(60, 31_536_000).default(3600),
  MAX_QUEUED_TASKS: int(1, 10_000_000).default(1000),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').max(1024, 'must be at most 1024 characters').optional(),
  OUTPUT_FORMAT: z.enum(['png', 'jpeg', 'webp', 'avif'], { error: 'must be png, jpeg, webp or avif' }).default('png'),
  WEBHOOK_URL: httpUrl.optional(),
  WEBHOOK_SECRET: z.string().regex(/^whsec_[A-Za-z0-9+/]{32,}={0,2}$/, 'must be whsec_ followed by a base64 secret of at least 24 bytes').optional(),
  WEBHOOK_RETRY_HOURS: int(1, 720).default(24),
  WEBHOOK_ALLOW_HOSTS: list(z.string().regex(/^[A-Za-z0-9.:[\]-]+$/, 'must be a host name or an IP address')).default([]),
  QUEUE_POLICY: z.enum(['fair', 'fifo'], { error: 'must be fair or fifo' }).default('fair'),
});

/** The names of every environment variable the service reads. */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(EnvSchema.shape);

/** Invalid configuration; `problems` has one line per variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.join('\n')}`);
  }
}

/** Parses the given environment. @default process.env, after loading `.env` from the working directory */
export function loadConfig(env: Record<string, string | undefined> = readEnv()): Config {
  // Empty strings mean "not set", as in most .env files.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = String(i.path[0]);
        return `${name}=${JSON.stringify(env[name] ?? '')}: ${i.message}`;
      }),
    );
  }
  const e = parsed.data;
  return {
    host: e.HOST,
    port: e.PORT,
    debug: e.DEBUG,
    comfyuiUrls: e.COMFYUI_URL.map((u) => u.replace(/\/+$/, '')),
    comfyuiTimeoutS: e.COMFYUI_TIMEOUT,
    maxFileSize: e.MAX_FILE_SIZE,
    maxConcurrentTasks: e.MAX_CONCURRENT_TASKS,
    taskCleanupDays: e.TASK_CLEANUP_DAYS,
    dataDir: e.DATA_DIR,
    publicUrl: e.PUBLIC_URL?.replace(/\/+$/, ''),
    corsOrigins: e.CORS_ORIGINS,
    allowedHosts: e.ALLOWED_HOSTS.map((h) => h.toLowerCase()),
    graphiql: e.GRAPHIQL,
    healthDetails: e.HEALTH_DETAILS,
    keepImageMetadata: e.KEEP_IMAGE_METADATA,
    maxImagePixels: e.MAX_IMAGE_PIXELS,
    bodyTimeoutS: e.BODY_TIMEOUT,
    maxSubscriptionsPerSocket: e.MAX_SUBSCRIPTIONS_PER_SOCKET,
    maxLiveConnections: e.MAX_LIVE_CONNECTIONS,
    workflow: e.WORKFLOW,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    storageUrl: e.STORAGE_URL,
    instanceId: e.INSTANCE_ID,
    taskLeaseS: e.TASK_LEASE_S,
    urlSigningSecret: e.URL_SIGNING_SECRET,
    imageUrlTtlS: e.IMAGE_URL_TTL_S,
    maxQueuedTasks: e.MAX_QUEUED_TASKS,
    queuePolicy: e.QUEUE_POLICY,
    metricsToken: e.METRICS_TOKEN,
    outputFormat: e.OUTPUT_FORMAT,
    webhookUrl: e.WEBHOOK_URL,
    webhookSecret: e.WEBHOOK_SECRET,
    webhookRetryHours: e.WEBHOOK_RETRY_HOURS,
    webhookAllowHosts: e.WEBHOOK_ALLOW_HOSTS.map((h) => h.toLowerCase()),
  };
}

function readEnv(): Record<string, string | undefined> {
  // Variables already set win over the file, as with python-dotenv in the old service.
  if (existsSync('.env')) process.loadEnvFile('.env');
  return process.env;
}
