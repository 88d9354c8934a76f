/**
 * The database, table by table, written by hand: the same types serve SQLite now and Postgres
 * later (generated types differ between the two and lose the status unions).
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/** Task statuses; the first four are the old service's, with the same meaning. */
export type TaskStatus = 'pending' | 'processing' | 'completed' | 'failed' | 'cancelled';
export const TASK_STATUSES: readonly TaskStatus[] = ['pending', 'processing', 'completed', 'failed', 'cancelled'];
export const FINAL_TASK_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];

/**
 * Image statuses. `submitted`: its prompt is (or may be) in a ComfyUI queue; `running`: ComfyUI
 * started it. Both are reconciled against ComfyUI after a crash.
 */
export type ImageStatus = 'pending' | 'submitted' | 'running' | 'completed' | 'failed' | 'cancelled';

export interface TasksTable {
  // The old service's columns.
  id: string;
  description: string;
  status: TaskStatus;
  progress: Generated<number>;
  /** JSON list of image paths, as the old service stored it. */
  result_path: string | null;
  error_message: string | null;
  created_at: string;
  updated_at: string;
  // What the engine adds.
  count: Generated<number>;
  /** `WxH` or `auto`. */
  size: Generated<string>;
  steps: Generated<number>;
  guidance: Generated<number>;
  base_seed: Generated<number>;
  workflow: Generated<string>;
  upload_sha256: string | null;
  started_at: string | null;
  finished_at: string | null;
  /** Grows by one with every persisted progress frame. */
  seq: Generated<number>;
  /** JSON of the latest persisted progress frame: the snapshot a new subscriber starts from. */
  last_frame: string | null;
  idempotency_key: string | null;
  /** Hash of the parameters, to tell a replay from a conflicting reuse of an idempotency key. */
  params_hash: string | null;
  /** The service instance processing it, and until when its claim holds without renewal. */
  claimed_by: string | null;
  lease_expires_at: string | null;
  /** Set by a replica that was asked to cancel a task another replica runs; that one ends it. */
  cancel_requested_at: string | null;
  /** The API key that created it; null for tasks made while the service was open (no key existed). */
  owner_key_id: string | null;
  /** The task's own webhook target (http or https), checked when the task was created; null: none. */
  webhook_url: ColumnType<string | null, string | null | undefined, string | null>;
  /** Comma-separated WebhookEvent values the task's own webhook receives; null: `completed`. */
  webhook_events: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface ImagesTable {
  task_id: string;
  idx: number;
  seed: number;
  /** Derived from the task id and index, stored before submission: a resubmit never runs it twice. */
  prompt_id: string;
  worker: string | null;
  status: ImageStatus;
  /** Relative to DATA_DIR. */
  file_path: string | null;
  width: number | null;
  height: number | null;
  bytes: number | null;
  content_type: string | null;
  error: string | null;
  attempts: Generated<number>;
  submitted_at: string | null;
  finished_at: string | null;
}

export interface UploadsTable {
  sha256: string;
  /** Relative to DATA_DIR. */
  file_path: string;
  bytes: number;
  content_type: string;
  width: number;
  height: number;
  created_at: ColumnType<string, string, never>;
}

/** Scopes an API key may hold; `admin` implies the others and sees every task. */
export type KeyScope = 'generate' | 'read' | 'admin';
export const KEY_SCOPES: readonly KeyScope[] = ['generate', 'read', 'admin'];

/** Fair-queue priority of a key's tasks: a higher class is served first, round-robin within one. */
export type KeyPriority = 'low' | 'normal' | 'high';
export const KEY_PRIORITIES: readonly KeyPriority[] = ['low', 'normal', 'high'];

export interface ApiKeysTable {
  /** Public id (`key_...`), shown in lists and recorded as a task's owner. */
  id: string;
  name: string;
  /** The key's first characters, to recognise it in a list (never enough to use it). */
  prefix: string;
  /** SHA-256 of the whole key, hex: the key itself is never stored. */
  hash: string;
  /** Comma-separated KeyScope values. */
  scopes: string;
  /** Pending plus processing tasks at once; null: no limit. */
  max_concurrent: number | null;
  /** Images in any rolling 24 hours; null: no limit. */
  images_per_day: number | null;
  /** Generate requests per minute; null: no limit. */
  rate_per_minute: number | null;
  priority: ColumnType<KeyPriority, KeyPriority | undefined, KeyPriority>;
  created_at: string;
  /** Updated coarsely (about once a minute per key and replica). */
  last_used_at: string | null;
  revoked_at: string | null;
}

/** Values every replica shares (the image-URL signing secret). */
export interface SettingsTable {
  name: string;
  value: string;
}

/** One row per service instance: the last time it could write (the write probe). */
export interface HeartbeatsTable {
  instance: string;
  at: string;
}

/** A webhook event's delivery state: `failed` is final (given up, or the receiver answered 410). */
export type WebhookStatus = 'pending' | 'delivered' | 'failed';

/**
 * The webhook outbox: one row per event and target, written in the transaction of the state change
 * that caused it. `id` is the Standard Webhooks `webhook-id`, the same on every attempt.
 */
export interface WebhookOutboxTable {
  id: string;
  task_id: string;
  /** Order of the task's events (shared by its targets): one target gets them in this order. */
  ordinal: number;
  url: string;
  /** `task`: the task's own webhook (checked against private addresses); `service`: WEBHOOK_URL (the operator's). */
  source: 'task' | 'service';
  /** `task.start`, `task.output` or `task.completed`. */
  type: string;
  /** The JSON body, exactly as sent. */
  payload: string;
  status: WebhookStatus;
  attempts: Generated<number>;
  next_attempt_at: string;
  /** Retries stop WEBHOOK_RETRY_HOURS after this (the event's creation, or its last redelivery). */
  retry_since: string;
  /** The replica delivering it now, and until when that claim holds. */
  leased_by: string | null;
  lease_expires_at: string | null;
  /** HTTP status of the last attempt; null when it got no answer. */
  last_status: number | null;
  /** Why the last attempt failed, or the start of the receiver's answer (a short excerpt). */
  last_error: string | null;
  created_at: string;
  /** When it was delivered or given up. */
  finished_at: string | null;
}

export interface Database {
  tasks: TasksTable;
  images: ImagesTable;
  uploads: UploadsTable;
  heartbeats: HeartbeatsTable;
  api_keys: ApiKeysTable;
  settings: SettingsTable;
  webhook_outbox: WebhookOutboxTable;
}

export type TaskRow = Selectable<TasksTable>;
export type NewTask = Insertable<TasksTable>;
export type TaskUpdate = Updateable<TasksTable>;
export type ImageRow = Selectable<ImagesTable>;
export type NewImage = Insertable<ImagesTable>;
export type ImageUpdate = Updateable<ImagesTable>;
export type UploadRow = Selectable<UploadsTable>;
export type NewUpload = Insertable<UploadsTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type NewApiKey = Insertable<ApiKeysTable>;
export type WebhookRow = Selectable<WebhookOutboxTable>;
export type NewWebhook = Insertable<WebhookOutboxTable>;
