/**
 * Delivers the outbox at least once. Due rows are leased (several replicas share the outbox; a
 * lease that lapses, a replica that died, lets another take the row), sent signed, and finished:
 * any 2xx delivers; 410 stops; anything else is retried with backoff and jitter until
 * WEBHOOK_RETRY_HOURS have passed. A task's later event to a target waits while an earlier one is
 * pending (the claim query sees to it). Woken in-process when a transition records events; other
 * replicas' rows are found by polling.
 */
import type { Db } from '../db/database.js';
import { claimDueWebhooks, deleteFinishedWebhooks, finishWebhookAttempt } from '../db/webhooks.js';
import type { WebhookRow } from '../db/types.js';
import { silentLogger, type Logger } from '../log.js';
import { nextAttemptAt, type BackoffOptions } from './backoff.js';
import type { AttemptOutcome, WebhookSender } from './sender.js';
import type { WebhookSigner } from './signing.js';

/** What a finished attempt is counted as: its outcome, or `expired` for a failure past the retry window. */
export type DeliveryOutcome = AttemptOutcome | 'expired';

/** Options of {@link WebhookDeliverer}. */
export interface DelivererOptions {
  db: Db;
  sender: WebhookSender;
  /** Loaded on first use (the secret may be made then). */
  signer: () => Promise<WebhookSigner>;
  /** This replica's name in leases. */
  instance: string;
  /** WEBHOOK_RETRY_HOURS, in ms. @default 24 hours */
  retryMs?: number;
  backoff?: BackoffOptions;
  /** Time between scans for due rows when nothing wakes it, in ms. @default 1000 */
  pollMs?: number;
  /** Attempts in flight at once. @default 16 */
  concurrency?: number;
  /** How long a lease holds: longer than an attempt's timeout. @default 60_000 */
  leaseMs?: number;
  /** Finished rows older than this are deleted (hourly), in ms. @default 7 days */
  keepFinishedMs?: number;
  /** Told of every finished attempt (metrics). @default nothing */
  onAttempt?: (outcome: DeliveryOutcome, row: WebhookRow) => void;
  log?: Logger;
}

const HOUR_MS = 3_600_000;

/** The delivery loop; see the module comment. */
export class WebhookDeliverer {
  private readonly inFlight = new Set<Promise<void>>();
  private timers: NodeJS.Timeout[] = [];
  private scanning = false;
  private scanAgain = false;
  private stopped = true;
  private readonly log: Logger;

  constructor(private readonly options: DelivererOptions) {
    this.log = options.log ?? silentLogger;
  }

  /** Starts polling (and delivering what is due now). */
  start(): void {
    this.stopped = false;
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.options.pollMs ?? 1000, () => this.wake());
    every(HOUR_MS, () => void this.prune());
    this.wake();
  }

  /** Stops claiming and waits for the attempts in flight (at most their timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.all([...this.inFlight]);
  }

  /** Looks for due rows now (a transition recorded events, or an attempt finished). */
  wake(): void {
    if (this.stopped) return;
    if (this.scanning) {
      this.scanAgain = true;
      return;
    }
    this.scanning = true;
    void this.scan()
      .catch((err: unknown) => this.log.warn('could not read the webhook outbox', { error: String(err) }))
      .finally(() => {
        this.scanning = false;
        if (this.scanAgain) {
          this.scanAgain = false;
          this.wake();
        }
      });
  }

  private async scan(): Promise<void> {
    const room = (this.options.concurrency ?? 16) - this.inFlight.size;
    if (room <= 0) return;
    const now = Date.now();
    const rows = await claimDueWebhooks(this.options.db, {
      instance: this.options.instance,
      now: new Date(now).toISOString(),
      leaseUntil: new Date(now + (this.options.leaseMs ?? 60_000)).toISOString(),
      limit: room,
    });
    for (const row of rows) {
      const attempt: Promise<void> = this.attempt(row)
        .catch((err: unknown) => this.log.error('webhook attempt failed to record', { id: row.id, error: String(err) }))
        .finally(() => {
          this.inFlight.delete(attempt);
          // Its successor (the task's next event) may be due now, and a slot is free.
          this.wake();
        });
      this.inFlight.add(attempt);
    }
  }

  private async attempt(row: WebhookRow): Promise<void> {
    const signer = await this.options.signer();
    const headers = signer.headers(row.id, row.payload);
    const result = await this.options.sender.send(row.url, row.payload, headers, row.source === 'task');
    const now = new Date();
    const at = now.toISOString();
    const common = { last_status: result.status, last_error: result.detail?.slice(0, 300) ?? null };
    let outcome: DeliveryOutcome = result.outcome;
    let changes;
    if (result.outcome === 'delivered') changes = { ...common, last_error: null, status: 'delivered' as const, finished_at: at };
    else if (result.outcome === 'gone') changes = { ...common, status: 'failed' as const, finished_at: at };
    else {
      const next = nextAttemptAt(row.attempts + 1, now, new Date(row.retry_since), this.options.retryMs ?? 24 * HOUR_MS, this.options.backoff);
      if (next) changes = { ...common, next_attempt_at: next.toISOString() };
      else {
        outcome = 'expired';
        changes = { ...common, status: 'failed' as const, finished_at: at };
      }
    }
    const kept = await finishWebhookAttempt(this.options.db, row.id, this.options.instance, changes);
    if (!kept) this.log.warn('webhook lease lapsed during an attempt; another replica may send it again', { id: row.id });
    this.options.onAttempt?.(outcome, row);
    if (outcome !== 'delivered') {
      this.log.warn('webhook not delivered', { id: row.id, task: row.task_id, type: row.type, outcome, attempt: row.attempts + 1, detail: result.detail });
    }
  }

  private async prune(): Promise<void> {
    const cutoff = new Date(Date.now() - (this.options.keepFinishedMs ?? 7 * 24 * HOUR_MS)).toISOString();
    await deleteFinishedWebhooks(this.options.db, cutoff).catch((err: unknown) => this.log.warn('could not prune the webhook outbox', { error: String(err) }));
  }
}
