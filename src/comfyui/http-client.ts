/**
 * HTTP client for one ComfyUI server (docs/comfyui-protocol.md §2), on an undici connection pool.
 *
 * Every call has a deadline, every reply is validated with the zod schemas of `protocol.ts`, and
 * every failure is one of the typed errors of `errors.ts`:
 * - connection refused, reset, DNS failure (`isTransportFailure`) → `ComfyUnreachableError`
 * - deadline passed → `ComfyTimeoutError`
 * - unexpected status → `ComfyHttpError`; reply of the wrong shape → `ComfyBadReplyError`
 * - `POST /prompt` refused (400), or accepted only in part (200 with `node_errors`) → `ComfyValidationError`
 *
 * Requests that are safe to repeat are retried once when a kept-alive connection turns out to be
 * dead (the server restarted since the last call). `POST /prompt` is never retried: ComfyUI does not
 * deduplicate prompt ids, so a retry could run the prompt twice (the worker reconciles instead).
 */
import { randomUUID } from 'node:crypto';
import { close, createWriteStream, mkdir as mkdirCallback, open as openCallback, write, writev } from 'node:fs';
import { once } from 'node:events';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Blob } from 'node:buffer';
import { FormData, Pool, type Dispatcher } from 'undici';
import { z } from 'zod';
import {
  ComfyBadReplyError,
  ComfyError,
  ComfyHttpError,
  ComfyTimeoutError,
  ComfyUnreachableError,
  ComfyValidationError,
} from './errors.js';
import {
  HistoryEntrySchema,
  ObjectInfoSchema,
  PromptAcceptedSchema,
  PromptRejectedSchema,
  QueueSchema,
  SystemStatsSchema,
  UploadedSchema,
  type ApiPrompt,
  type FileRef,
  type HistoryEntry,
  type ObjectInfo,
  type PromptAccepted,
  type Queue,
  type SystemStats,
  type Uploaded,
} from './protocol.js';
import { isStaleConnection, isTransportFailure, transportCode } from './transport-failure.js';

export interface ComfyHttpClientOptions {
  /**
   * Deadline of each call (connect, send, and read the whole reply), in milliseconds.
   * @default 30_000
   */
  timeoutMs?: number;
  /**
   * Deadline of one `downloadView` call, in milliseconds.
   * @default 120_000
   */
  downloadTimeoutMs?: number;
  /**
   * Most connections kept open to the server.
   * @default 8
   */
  connections?: number;
}

export interface QueuePromptRequest {
  prompt: ApiPrompt;
  /** Our id for the prompt. Use a fresh UUID: ComfyUI does not check ids for uniqueness (docs/comfyui-protocol.md §8.7). */
  promptId: string;
  /** The WebSocket `clientId` that receives the prompt's messages. Without it, no completion message is sent. */
  clientId?: string;
  /** Put the prompt ahead of normal submissions. */
  front?: boolean;
}

export interface UploadImageOptions {
  /** Replace a file of the same name instead of getting a deduplicated name. @default false */
  overwrite?: boolean;
  subfolder?: string;
  /** @default 'input' */
  type?: 'input' | 'temp' | 'output';
}

const UNDICI_TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

const HistoryReplySchema = z.record(z.string(), HistoryEntrySchema);

/** The `error.type` given to a 200 reply with `node_errors` (ComfyUI has no type for it). */
export const PARTIAL_VALIDATION_ERROR_TYPE = 'partial_outputs_failed_validation';

interface Call {
  method: Dispatcher.HttpMethod;
  /** Path relative to the base URL, query included. */
  path: string;
  /** For error messages: `GET /history/abc`. */
  operation: string;
  body?: string | FormData;
  /** Safe to send twice (a stale kept-alive connection is then retried once, see `isStaleConnection`). */
  retryable: boolean;
  timeoutMs?: number;
}

export class ComfyHttpClient {
  /** The server's base URL, without a trailing slash (a path prefix such as `/comfy` is kept). */
  readonly baseUrl: string;
  private readonly pool: Pool;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly downloadTimeoutMs: number;

  constructor(baseUrl: string, options: ComfyHttpClientOptions = {}) {
    const url = new URL(baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`ComfyUI URL must be http(s): ${baseUrl}`);
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.baseUrl = url.origin + this.prefix;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.downloadTimeoutMs = options.downloadTimeoutMs ?? 120_000;
    this.pool = new Pool(url.origin, { connections: options.connections ?? 8 });
  }

  /**
   * `POST /prompt`. Resolves once ComfyUI has queued the whole prompt.
   *
   * A 200 whose `node_errors` is not empty means only some outputs passed validation and the rest
   * will run anyway (docs/comfyui-protocol.md §6.3); that prompt is deleted from the queue (or interrupted if it
   * already started) and the call throws `ComfyValidationError` like a 400 would.
   */
  async queuePrompt(req: QueuePromptRequest): Promise<PromptAccepted> {
    const operation = 'POST /prompt';
    const body: Record<string, unknown> = { prompt: req.prompt, prompt_id: req.promptId };
    if (req.clientId !== undefined) body['client_id'] = req.clientId;
    if (req.front !== undefined) body['front'] = req.front;

    const accepted = await this.call({ method: 'POST', path: '/prompt', operation, body: JSON.stringify(body), retryable: false }, async (res) => {
      const text = await res.body.text();
      if (res.statusCode === 400) {
        const rejected = PromptRejectedSchema.safeParse(parseJson(text));
        if (!rejected.success) throw new ComfyHttpError(this.baseUrl, operation, 400, snippet(text));
        const { error, node_errors } = rejected.data;
        throw new ComfyValidationError(this.baseUrl, req.promptId, error.type, node_errors, error);
      }
      if (res.statusCode !== 200) throw new ComfyHttpError(this.baseUrl, operation, res.statusCode, snippet(text));
      return this.validate(operation, PromptAcceptedSchema, parseJsonReply(this.baseUrl, operation, text));
    });

    if (accepted.prompt_id !== req.promptId) {
      throw new ComfyBadReplyError(this.baseUrl, operation, `queued as ${accepted.prompt_id}, not as the requested ${req.promptId}`);
    }
    if (Object.keys(accepted.node_errors).length > 0) {
      // Delete first: a pending prompt can then no longer start, so the interrupt only matters if it already runs.
      await this.deleteQueued([req.promptId]).catch(() => undefined);
      await this.interrupt(req.promptId).catch(() => undefined);
      throw new ComfyValidationError(this.baseUrl, req.promptId, PARTIAL_VALIDATION_ERROR_TYPE, accepted.node_errors);
    }
    return accepted;
  }

  /** `GET /history/{id}`: the entry once the prompt has finished (in any way), else `undefined`. */
  async getHistory(promptId: string): Promise<HistoryEntry | undefined> {
    const operation = `GET /history/${promptId}`;
    const reply = await this.getJson(`/history/${encodeURIComponent(promptId)}`, operation, HistoryReplySchema);
    const keys = Object.keys(reply);
    if (keys.length === 0) return undefined; // unknown, pending, running and deleted prompts all give {}
    const entry = reply[promptId];
    if (!entry) throw new ComfyBadReplyError(this.baseUrl, operation, `history for another prompt (${keys.slice(0, 3).join(', ')})`);
    return entry;
  }

  /** `GET /queue`. `queue_pending` is in heap order: sort by element 0 for run order. */
  getQueue(): Promise<Queue> {
    return this.getJson('/queue', 'GET /queue', QueueSchema);
  }

  /** `POST /queue {delete}`: removes these prompts if they are pending; running and unknown ids are ignored. */
  async deleteQueued(promptIds: string[]): Promise<void> {
    if (promptIds.length === 0) return;
    await this.postEmpty('/queue', 'POST /queue delete', { delete: promptIds }, true);
  }

  /**
   * `POST /interrupt {prompt_id}`: interrupts that prompt only if it is running now. Always with an
   * id: without one ComfyUI interrupts whatever runs, maybe another client's (docs/comfyui-protocol.md §8.8).
   */
  async interrupt(promptId: string): Promise<void> {
    await this.postEmpty('/interrupt', 'POST /interrupt', { prompt_id: promptId }, true);
  }

  /**
   * `GET /view`: streams a file to `destPath`. The bytes go to a temporary file next to `destPath`,
   * which is synced and renamed into place only when complete: on any failure no file is left.
   * The folder of `destPath` is made (with its parents) when it is missing as the temporary file is created.
   * @param options.maxBytes refuse larger files (`ComfyBadReplyError`); @default unlimited
   * @param options.durable sync the file before the rename; false for a temp file the caller makes durable itself (or never keeps). @default true
   */
  async downloadView(file: FileRef, destPath: string, options: { maxBytes?: number; durable?: boolean } = {}): Promise<{ bytes: number; contentType: string }> {
    const query = new URLSearchParams({ filename: file.filename, subfolder: file.subfolder, type: file.type });
    const operation = `GET /view ${file.type}/${file.subfolder ? `${file.subfolder}/` : ''}${file.filename}`;
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    const tmp = join(dirname(destPath), `.${basename(destPath)}.${randomUUID()}.part`);
    try {
      const result = await this.call(
        { method: 'GET', path: `/view?${query}`, operation, retryable: true, timeoutMs: this.downloadTimeoutMs },
        async (res) => {
          if (res.statusCode !== 200) throw new ComfyHttpError(this.baseUrl, operation, res.statusCode, snippet(await res.body.text()));
          const declared = Number(headerValue(res.headers['content-length']));
          if (declared > maxBytes) {
            await res.body.dump().catch(() => undefined);
            throw new ComfyBadReplyError(this.baseUrl, operation, `file of ${declared} bytes exceeds the limit of ${maxBytes}`);
          }
          let bytes = 0;
          const counter = new Transform({
            transform: (chunk: Buffer, _encoding, done) => {
              bytes += chunk.length;
              if (bytes > maxBytes) done(new ComfyBadReplyError(this.baseUrl, operation, `file exceeds the limit of ${maxBytes} bytes`));
              else done(null, chunk);
            },
          });
          const out = createWriteStream(tmp, { fs: OPEN_MAKING_FOLDER });
          try {
            await pipeline(res.body, counter, out);
          } catch (err) {
            // A stream destroyed before its open finished still creates the file and closes it
            // afterwards: wait for that, or the unlink below can run first and leave the file behind.
            if (!out.closed) await once(out, 'close').catch(() => undefined);
            throw err;
          }
          return { bytes, contentType: headerValue(res.headers['content-type']) ?? 'application/octet-stream' };
        },
      );
      if (options.durable ?? true) {
        // Sync before the rename so that a crash cannot leave a complete-looking but empty file.
        const handle = await open(tmp, 'r+');
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
      }
      await rename(tmp, destPath);
      return result;
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  /** `POST /upload/image`. Always use the returned `name`: ComfyUI renames or deduplicates (docs/comfyui-protocol.md §2.7). */
  uploadImage(data: Buffer, filename: string, options: UploadImageOptions = {}): Promise<Uploaded> {
    const operation = 'POST /upload/image';
    const form = new FormData();
    form.append('image', new Blob([data]), filename);
    if (options.overwrite) form.append('overwrite', 'true');
    if (options.subfolder !== undefined) form.append('subfolder', options.subfolder);
    if (options.type !== undefined) form.append('type', options.type);
    // Not retried: the form body is a one-shot stream.
    return this.call({ method: 'POST', path: '/upload/image', operation, body: form, retryable: false }, async (res) => {
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new ComfyHttpError(this.baseUrl, operation, res.statusCode, snippet(text));
      return this.validate(operation, UploadedSchema, parseJsonReply(this.baseUrl, operation, text));
    });
  }

  /** `GET /system_stats`: versions, RAM and the torch device. Cheap; a good liveness probe. */
  systemStats(): Promise<SystemStats> {
    return this.getJson('/system_stats', 'GET /system_stats', SystemStatsSchema);
  }

  /** `GET /object_info`: every node class. Large, and ComfyUI rescans model folders on each call. */
  objectInfo(): Promise<ObjectInfo> {
    return this.getJson('/object_info', 'GET /object_info', ObjectInfoSchema);
  }

  /** Closes the connections; calls still running get up to a second to finish, then are aborted. */
  async close(): Promise<void> {
    if (this.pool.closed) return;
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 1_000)));
    const outcome = await Promise.race([this.pool.close().then(() => 'closed' as const), grace]);
    clearTimeout(timer);
    if (outcome === 'timeout') await this.pool.destroy();
  }

  // -------------------------------------------------------------------------------------------

  private getJson<S extends z.ZodType>(path: string, operation: string, schema: S): Promise<z.output<S>> {
    return this.call({ method: 'GET', path, operation, retryable: true }, async (res) => {
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new ComfyHttpError(this.baseUrl, operation, res.statusCode, snippet(text));
      return this.validate(operation, schema, parseJsonReply(this.baseUrl, operation, text));
    });
  }

  /** A POST of `json` whose reply has nothing to read. */
  private postEmpty(path: string, operation: string, json: unknown, retryable: boolean): Promise<void> {
    return this.call({ method: 'POST', path, operation, retryable, body: JSON.stringify(json) }, async (res) => {
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new ComfyHttpError(this.baseUrl, operation, res.statusCode, snippet(text));
    });
  }

  private validate<S extends z.ZodType>(operation: string, schema: S, value: unknown): z.output<S> {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ComfyBadReplyError(this.baseUrl, operation, issues.join('; '), { cause: parsed.error });
  }

  /**
   * Sends one request and hands the response to `consume`, all under one deadline (reading the
   * body included). Transport failures are mapped to typed errors here; `consume` throws its own.
   */
  private async call<T>(call: Call, consume: (res: Dispatcher.ResponseData) => Promise<T>): Promise<T> {
    const timeoutMs = call.timeoutMs ?? this.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), timeoutMs);
      try {
        const res = await this.pool.request({
          method: call.method,
          path: this.prefix + call.path,
          headers: typeof call.body === 'string' ? { 'content-type': 'application/json' } : {},
          body: call.body ?? null,
          signal: abort.signal,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        try {
          return await consume(res);
        } finally {
          // A consumer that threw early may not have read the body; free the connection.
          if (!res.body.destroyed && !res.body.readableEnded) res.body.destroy();
        }
      } catch (err) {
        if (err instanceof ComfyError) throw err;
        const code = transportCode(err);
        if (abort.signal.aborted || (code !== undefined && UNDICI_TIMEOUT_CODES.has(code))) {
          throw new ComfyTimeoutError(this.baseUrl, call.operation, timeoutMs, { cause: err });
        }
        if (code !== undefined && isTransportFailure(err)) {
          if (call.retryable && attempt === 1 && isStaleConnection(err)) continue;
          throw new ComfyUnreachableError(this.baseUrl, code, call.operation, { cause: err });
        }
        throw err; // local failures (a full disk while downloading, ...) are not ComfyUI's
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

/**
 * File calls of a download's write stream whose open, finding the file's folder missing (never made,
 * or removed since), makes it and opens once more: no mkdir when the folder is there, and no second request.
 */
const OPEN_MAKING_FOLDER = {
  open(path: string, flags: string, mode: number, callback: (err: NodeJS.ErrnoException | null, fd?: number) => void): void {
    openCallback(path, flags, mode, (err, fd) => {
      if (err?.code !== 'ENOENT') return callback(err, fd);
      mkdirCallback(dirname(path), { recursive: true }, (mkdirErr) => (mkdirErr ? callback(mkdirErr) : openCallback(path, flags, mode, callback)));
    });
  },
  write,
  writev,
  close,
};

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function parseJsonReply(worker: string, operation: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ComfyBadReplyError(worker, operation, `not JSON: ${snippet(text) || '(empty body)'}`, { cause: err });
  }
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 500 ? `${flat.slice(0, 500)}…` : flat;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
