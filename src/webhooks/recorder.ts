/**
 * Writes webhook events into the outbox inside a transition's transaction: the event exists exactly
 * when the state change does (a crash never loses one, a rollback never invents one). The body is
 * built there too, so it shows the task as that change left it.
 */
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import type { UrlSigner } from '../auth/url-signer.js';
import type { Db } from '../db/database.js';
import { imagesOfTask } from '../db/images.js';
import { findTask, resultPaths } from '../db/tasks.js';
import type { NewWebhook } from '../db/types.js';
import { insertWebhooks, nextWebhookOrdinal } from '../db/webhooks.js';
import { publicResultPaths } from '../tasks/public-result-paths.js';
import { taskStatusBody } from '../tasks/task-status-body.js';
import { storedEvents, webhookType, type WebhookEvent } from './events.js';

/** What the recorder needs from the service's configuration. */
export interface WebhookRecorderOptions {
  /** WEBHOOK_URL: receives every task's events. @default none */
  globalUrl?: string | undefined;
  /** Base of the image URLs in bodies: PUBLIC_URL, or the service's own URL. @default '' (relative) */
  baseUrl?: string | (() => string);
  /** Signs image URLs of tasks that have an owner key, as the REST answer to that key would. @default unsigned */
  signer?: UrlSigner | undefined;
  /** Absolute DATA_DIR, for `result_path` as REST shows it. @default file names only */
  dataDir?: string;
  /** Called after a transaction that recorded events committed (wakes this process's deliverer). @default nothing */
  onRecorded?: () => void;
}

/** A new event id, `msg_` and 24 random base64url characters (the Standard Webhooks convention). */
export function newWebhookId(): string {
  return `msg_${randomBytes(18).toString('base64url')}`;
}

/** Records webhook events in the outbox; see the module comment. */
export class WebhookRecorder {
  constructor(private readonly options: WebhookRecorderOptions = {}) {}

  /**
   * Inside `trx`, after the state change: one outbox row per target that wants each of `events`
   * (the task's own webhook by its filter, WEBHOOK_URL for all). Returns how many were written.
   */
  async record(trx: Db, taskId: string, events: readonly WebhookEvent[]): Promise<number> {
    const task = await findTask(trx, taskId);
    if (!task) return 0;
    const wanted = task.webhook_url ? storedEvents(task.webhook_events) : [];
    const rows: NewWebhook[] = [];
    const at = new Date().toISOString();
    let ordinal: number | undefined;
    let data: Record<string, unknown> | undefined;
    for (const event of events) {
      const targets: [string, 'task' | 'service'][] = [];
      if (task.webhook_url && wanted.includes(event)) targets.push([task.webhook_url, 'task']);
      if (this.options.globalUrl) targets.push([this.options.globalUrl, 'service']);
      if (targets.length === 0) continue;
      ordinal ??= await nextWebhookOrdinal(trx, taskId);
      if (!data) {
        const images = await imagesOfTask(trx, taskId);
        const { dataDir } = this.options;
        const paths = dataDir ? publicResultPaths(task.result_path, dataDir) : resultPaths(task.result_path).map((p) => basename(p));
        const base = typeof this.options.baseUrl === 'function' ? this.options.baseUrl() : (this.options.baseUrl ?? '');
        data = taskStatusBody({ task, images, queuePosition: null, resultPaths: paths }, base, task.owner_key_id !== null ? this.options.signer : undefined);
      }
      const payload = JSON.stringify({ type: webhookType(event), timestamp: at, data });
      for (const [url, source] of targets) {
        rows.push({ id: newWebhookId(), task_id: taskId, ordinal, url, source, type: webhookType(event), payload, status: 'pending', next_attempt_at: at, retry_since: at, created_at: at });
      }
      ordinal++;
    }
    await insertWebhooks(trx, rows);
    return rows.length;
  }

  /** Tells the deliverer that a transaction which recorded events has committed. */
  committed(): void {
    this.options.onRecorded?.();
  }
}

/** Records the task's own webhooks only, with unsigned relative image URLs: for callers given no recorder. */
export const TASK_WEBHOOKS_ONLY = new WebhookRecorder();
