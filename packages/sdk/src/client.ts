/**
 * A small typed client for Kontext Gateway, usable in Node (20+) and browsers: `generate` with a
 * reference image (a GraphQL multipart request), `task`, `tasks`, `cancel`, and `watch`, an async
 * iterator of a task's progress over graphql-ws (or Server-Sent Events with `transport: 'sse'`).
 *
 * Once the service has API keys, pass one as `apiKey`: it is sent as `Authorization: Bearer <key>`
 * on every HTTP request and in the graphql-ws `connection_init` payload (a refused key makes
 * `watch` throw a KontextError for close code 4401, the other calls one with status 401). The
 * image URLs the service then returns are signed and work without the key until they expire.
 *
 * ```ts
 * import { createKontextClient } from '@kontext-gateway/sdk';
 * import WebSocket from 'ws'; // Node 20 has no global WebSocket; browsers and Node 22+ do
 * const kontext = createKontextClient({ url: 'http://127.0.0.1:9000/graphql', apiKey: process.env.KONTEXT_API_KEY, webSocketImpl: WebSocket });
 * const result = await kontext.generate({ referenceImage: await readFile('car.png'), description: 'make it night' });
 * if (result.__typename !== 'GenerateSuccess') throw new Error(result.message);
 * for await (const frame of kontext.watch(result.task.id)) console.log(frame.status, frame.progress);
 * await kontext.close();
 * ```
 */
import type { GraphQLFormattedError } from 'graphql';
import { createClient, type Client } from 'graphql-ws/client';
import type {
  GenerateMutation,
  ImageFieldsFragment,
  QuotaLimit,
  TaskFieldsFragment,
  TaskProgressSubscription,
  TasksQuery,
  TaskStatus,
  TypedDocumentString,
  WebhookEvent,
} from './gql/graphql.js';
import { CancelTaskDocument, GenerateDocument, TaskDocument, TaskProgressDocument, TasksDocument } from './operations.js';
import { SseRefusal, subscribeOverSse, type StreamedResult } from './sse.js';

/** PENDING, PROCESSING, COMPLETED, FAILED or CANCELLED. */
export type { TaskStatus };
/** The limit in a QuotaExceededError: MAX_CONCURRENT, IMAGES_PER_DAY, RATE or MAX_QUEUED_TASKS. */
export type { QuotaLimit };
/** An event a task's webhook may receive: `START`, `OUTPUT`, `COMPLETED`. */
export type { WebhookEvent };
/** A task, with its finished images. */
export type Task = TaskFieldsFragment;
/** A finished image; its bytes are at `url` (relative to the server unless it set PUBLIC_URL). */
export type Image = ImageFieldsFragment;
/** One frame of a task's progress. */
export type TaskProgress = TaskProgressSubscription['taskProgress'];
/** `GenerateSuccess` with the task, or the `ValidationError` / `UploadRejectedError` / `QuotaExceededError` that refused it. */
export type GenerateResult = GenerateMutation['generate'];
/** A page of tasks, newest first. */
export type TaskPage = TasksQuery['tasks'];

/** Options of {@link createKontextClient}. */
export interface KontextClientOptions {
  /** The GraphQL endpoint, e.g. `http://127.0.0.1:9000/graphql`. */
  url: string;
  /** The WebSocket endpoint for `watch`. @default `url` with http(s) replaced by ws(s) */
  wsUrl?: string;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** A WebSocket constructor for `watch`; on Node 20 pass `WebSocket` from the `ws` package. @default globalThis.WebSocket */
  webSocketImpl?: unknown;
  /** Extra headers on every HTTP request (e.g. for a proxy). @default {} */
  headers?: Record<string, string>;
  /**
   * The API key (`kx_...`), sent as `Authorization: Bearer <key>` over HTTP and as
   * `{"authorization": "Bearer <key>"}` in graphql-ws' `connection_init`. @default undefined (none: a service without keys)
   */
  apiKey?: string;
}

/** What `generate` takes; the rest of the parameters default on the server. */
export interface GenerateOptions {
  /** The reference image: a File or Blob, or its bytes (a Buffer or Uint8Array). PNG, JPEG or WebP. */
  referenceImage: Blob | Uint8Array;
  /** Name sent with the file. @default the File's name, else `reference` */
  fileName?: string;
  /** What to change, 1-2000 characters. */
  description: string;
  /** Images, 1-4. @default 1 */
  count?: number;
  /** `auto` or `WxH` (multiples of 16, 256-2048). @default '1024x1024' */
  size?: string;
  /** Sampler steps, 1-100. @default 20 */
  steps?: number;
  /** Flux guidance, 0-20. @default 2.5 */
  guidance?: number;
  /** Base seed, 0 to 2^53-1. @default random */
  seed?: number;
  /** The same key and request again returns the same task instead of a new one. */
  idempotencyKey?: string;
  /** An http(s) URL that receives the task's events as signed POSTs (Standard Webhooks). @default none */
  webhook?: string;
  /** The events `webhook` receives. @default ['COMPLETED'] */
  webhookEvents?: WebhookEvent[];
}

/** Options of `watch`. */
export interface WatchOptions {
  /**
   * How frames come: over the client's one graphql-ws socket, or over Server-Sent Events (one HTTP
   * request per watch; for networks that drop WebSocket upgrades). @default 'graphql-ws'
   */
  transport?: 'graphql-ws' | 'sse';
  /** Ends the watch early (the loop then ends without an error). @default none */
  signal?: AbortSignal;
}

/** A request the server refused, or GraphQL errors in its reply. */
export class KontextError extends Error {
  override readonly name = 'KontextError';
  constructor(
    message: string,
    /** The HTTP status, when the error came over HTTP. */
    readonly status: number | undefined,
    readonly errors: readonly GraphQLFormattedError[],
    /** The WebSocket close code, when the socket closed under a `watch` (4401: no valid key, 4403: refused). */
    readonly closeCode?: number,
  ) {
    super(message);
  }
}

/** The client {@link createKontextClient} returns. */
export interface KontextClient {
  /** Uploads the reference image and queues a task; limits and upload problems come back as typed results, not exceptions. */
  generate(options: GenerateOptions): Promise<GenerateResult>;
  /** A task by id; null when there is none. */
  task(id: string): Promise<Task | null>;
  /** Tasks newest first: `first` (default 20, at most 100) after the `endCursor` of the previous page. */
  tasks(options?: { first?: number; after?: string | null; status?: TaskStatus }): Promise<TaskPage>;
  /** Cancels a task (finished images are kept); null for an unknown id. */
  cancel(id: string): Promise<Task | null>;
  /**
   * The task's progress: its current state first, then every frame until the final one (COMPLETED,
   * FAILED or CANCELLED), where the iteration ends. Leaving the loop early unsubscribes. Throws a
   * KontextError for an unknown task.
   */
  watch(taskId: string, options?: WatchOptions): AsyncGenerator<TaskProgress, void, undefined>;
  /** Closes the WebSocket, if `watch` opened one. */
  close(): Promise<void>;
}

/** Creates a client; nothing connects until the first call (the WebSocket only for `watch`). */
export function createKontextClient(options: KontextClientOptions): KontextClient {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const authorization = options.apiKey !== undefined ? `Bearer ${options.apiKey}` : undefined;
  const headers = { ...options.headers, ...(authorization ? { authorization } : {}) };
  let ws: Client | undefined;

  // One socket for every watch, opened on the first and closed 5 s after the last ends (graphql-ws'
  // lazy mode), so watching task after task does not reconnect each time; close() ends it at once.
  const socket = (): Client =>
    (ws ??= createClient({
      url: options.wsUrl ?? options.url.replace(/^http/, 'ws'),
      ...(options.webSocketImpl ? { webSocketImpl: options.webSocketImpl } : {}),
      lazy: true,
      lazyCloseTimeout: 5_000,
      ...(authorization ? { connectionParams: { authorization } } : {}),
    }));

  async function post<R>(body: BodyInit, extraHeaders: Record<string, string>): Promise<R> {
    const res = await fetchImpl(options.url, {
      method: 'POST',
      headers: { accept: 'application/graphql-response+json, application/json', ...headers, ...extraHeaders },
      body,
    });
    let reply: { data?: R | null; errors?: GraphQLFormattedError[] };
    try {
      reply = (await res.json()) as typeof reply;
    } catch {
      throw new KontextError(`${options.url} answered HTTP ${res.status} without a GraphQL reply`, res.status, []);
    }
    if (reply.errors?.length) throw new KontextError(reply.errors.map((e) => e.message).join('; '), res.status, reply.errors);
    if (!res.ok || !reply.data) throw new KontextError(`${options.url} answered HTTP ${res.status} without data`, res.status, []);
    return reply.data;
  }

  function execute<R, V>(document: TypedDocumentString<R, V>, variables: V): Promise<R> {
    return post<R>(JSON.stringify({ query: document.toString(), variables }), { 'content-type': 'application/json' });
  }

  return {
    async generate({ referenceImage, fileName, ...input }) {
      // The GraphQL multipart request spec: operations (the file's place set to null), map, then the file.
      const variables = { input: { ...input, referenceImage: null } };
      const form = new FormData();
      form.set('operations', JSON.stringify({ query: GenerateDocument.toString(), operationName: 'Generate', variables }));
      form.set('map', JSON.stringify({ 0: ['variables.input.referenceImage'] }));
      form.set('0', toBlob(referenceImage), fileName ?? (isFile(referenceImage) ? referenceImage.name : 'reference'));
      // Multipart is a CORS "simple" request: the server's CSRF prevention wants this header on it.
      const data = await post<GenerateMutation>(form, { 'x-graphql-yoga-csrf': '1' });
      return data.generate;
    },
    async task(id) {
      return (await execute(TaskDocument, { id })).task;
    },
    async tasks({ first, after, status } = {}) {
      return (await execute(TasksDocument, { first: first ?? null, after: after ?? null, status: status ?? null })).tasks;
    },
    async cancel(id) {
      return (await execute(CancelTaskDocument, { id })).cancelTask;
    },
    async *watch(taskId, { transport = 'graphql-ws', signal } = {}) {
      const request = { query: TaskProgressDocument.toString(), variables: { taskId } };
      const results: AsyncIterable<StreamedResult<TaskProgressSubscription>> =
        transport === 'sse' ? subscribeOverSse(fetchImpl, options.url, headers, request, signal) : socket().iterate<TaskProgressSubscription>(request);
      let last = -1;
      try {
        for await (const result of results) {
          if (result.errors?.length) throw new KontextError(result.errors.map((e) => e.message).join('; '), undefined, result.errors);
          const frame = result.data?.taskProgress;
          // After a reconnect the server starts again from the current state: skip what was seen.
          if (!frame || frame.seq <= last) continue;
          last = frame.seq;
          yield frame;
        }
      } catch (err) {
        if (signal?.aborted) return;
        throw asKontextError(err);
      }
    },
    async close() {
      const client = ws;
      ws = undefined;
      await client?.dispose();
    },
  };
}

function isFile(value: Blob | Uint8Array): value is File {
  return typeof File !== 'undefined' && value instanceof File;
}

function toBlob(value: Blob | Uint8Array): Blob {
  if (value instanceof Uint8Array) {
    // Blob's typings want bytes on a plain ArrayBuffer; copy the rare view over a SharedArrayBuffer.
    const bytes = value.buffer instanceof ArrayBuffer ? (value as Uint8Array<ArrayBuffer>) : new Uint8Array(value);
    return new Blob([bytes]);
  }
  return value;
}

/** graphql-ws rejects with the GraphQL errors of an `error` message, or with the socket's CloseEvent. */
function asKontextError(err: unknown): Error {
  if (err instanceof SseRefusal) return new KontextError(err.message, err.status, err.errors);
  if (err instanceof Error) return err;
  if (Array.isArray(err)) {
    const errors = err as GraphQLFormattedError[];
    return new KontextError(errors.map((e) => e.message).join('; '), undefined, errors);
  }
  const close = err as { code?: unknown; reason?: unknown };
  if (typeof close.code === 'number') return new KontextError(`WebSocket closed: ${close.code} ${String(close.reason ?? '')}`.trim(), undefined, [], close.code);
  return new KontextError(String(err), undefined, []);
}
