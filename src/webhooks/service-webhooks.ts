/**
 * The webhooks of one service process, wired from its configuration: the recorder the transitions
 * write events with, and the deliverer that sends them, woken by the recorder.
 */
import type { UrlSigner } from '../auth/url-signer.js';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import type { Logger } from '../log.js';
import type { BackoffOptions } from './backoff.js';
import { WebhookDeliverer, type DeliveryOutcome } from './deliverer.js';
import { WebhookRecorder } from './recorder.js';
import { WebhookSender } from './sender.js';
import { loadWebhookSecret, WebhookSigner } from './signing.js';
import type { Resolver, TargetPolicy } from './target-check.js';

/** Knobs for tests and benchmarks; production uses the defaults. */
export interface WebhookOptions {
  /** Resolves host names for the target checks. @default the system resolver */
  resolve?: Resolver;
  /** Longest wait before the first retry, in ms. @default 5000 */
  firstRetryMs?: number;
  /** Time between outbox scans when nothing wakes the deliverer, in ms. @default 1000 */
  pollMs?: number;
  /** Attempts in flight at once. @default 16 */
  concurrency?: number;
  /** Limit of one attempt, in ms. @default 10_000 */
  timeoutMs?: number;
}

/** What {@link createServiceWebhooks} needs. */
export interface ServiceWebhooksInput {
  db: Db;
  config: Pick<Config, 'webhookUrl' | 'webhookSecret' | 'webhookRetryHours' | 'webhookAllowHosts' | 'publicUrl'>;
  /** Signs image URLs in bodies of tasks with an owner key. */
  urlSigner: UrlSigner;
  /** Absolute DATA_DIR. */
  dataDir: string;
  instance: string;
  /** The service's own URL, once it listens: the image URLs' base without PUBLIC_URL. */
  ownUrl: () => string;
  userAgent: string;
  onAttempt?: (outcome: DeliveryOutcome) => void;
  log: Logger;
  options?: WebhookOptions;
}

/** The wired parts. */
export interface ServiceWebhooks {
  /** What task targets are checked against (at creation and delivery). */
  policy: TargetPolicy;
  recorder: WebhookRecorder;
  deliverer: WebhookDeliverer;
  /** Stops the deliverer (after the attempts in flight) and closes its connections. */
  close(): Promise<void>;
}

/** Wires the recorder and the deliverer; start the deliverer once the engine runs. */
export function createServiceWebhooks(input: ServiceWebhooksInput): ServiceWebhooks {
  const { config, options = {} } = input;
  const policy: TargetPolicy = { allowHosts: config.webhookAllowHosts, ...(options.resolve ? { resolve: options.resolve } : {}) };
  const sender = new WebhookSender({ policy, userAgent: input.userAgent, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) });
  // Loaded when the first event is sent: a service that never sends one stores no secret.
  let signer: Promise<WebhookSigner> | undefined;
  const loadSigner = (): Promise<WebhookSigner> =>
    (signer ??= loadWebhookSecret(input.db, config.webhookSecret).then(
      (secret) => new WebhookSigner(secret),
      (err: unknown) => {
        signer = undefined; // try again at the next attempt
        throw err;
      },
    ));
  const backoff: BackoffOptions = options.firstRetryMs !== undefined ? { firstRetryMs: options.firstRetryMs } : {};
  const deliverer = new WebhookDeliverer({
    db: input.db,
    sender,
    signer: loadSigner,
    instance: input.instance,
    retryMs: config.webhookRetryHours * 3_600_000,
    backoff,
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(input.onAttempt ? { onAttempt: input.onAttempt } : {}),
    log: input.log,
  });
  const recorder = new WebhookRecorder({
    globalUrl: config.webhookUrl,
    baseUrl: () => config.publicUrl ?? input.ownUrl(),
    signer: input.urlSigner,
    dataDir: input.dataDir,
    onRecorded: () => deliverer.wake(),
  });
  return {
    policy,
    recorder,
    deliverer,
    close: async () => {
      await deliverer.stop();
      await sender.close();
    },
  };
}
