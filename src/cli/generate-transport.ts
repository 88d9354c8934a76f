/**
 * How `kontext generate` talks to the service: submit a request, follow the task to its end, list
 * its image URLs, cancel it. The command depends only on `GenerateTransport`; this implementation
 * uses the typed SDK (GraphQL multipart upload, progress frames over graphql-ws).
 */
import WebSocket from 'ws';
import { createKontextClient, KontextError, type KontextClient, type TaskProgress } from '@kontext-gateway/sdk';
import type { TaskStatus } from '../db/types.js';
import type { GenerateParams } from '../tasks/generate-params.js';
import { authorizationHeader } from './environment.js';
import { CommandError } from './output.js';
import { ServiceUnreachableError, unreachable } from './service.js';

/** What `generate` asks for: the service's own parameters, plus the image. */
export interface GenerateRequest extends Omit<GenerateParams, 'idempotencyKey'> {
  referenceImage: Buffer;
  /** Sent as the upload's file name (the service detects the type from the bytes). */
  fileName: string;
}

/** The state of a task at one moment; absolute, so a missed update loses nothing. */
export interface TaskUpdate {
  status: TaskStatus;
  /** 0-100 over the whole task. */
  progress: number;
  /** 1 = next to start; only while pending. */
  queuePosition: number | null;
  /** The image `step`/`totalSteps` belong to, when the transport knows per-image steps. */
  imageIndex: number | null;
  step: number | null;
  totalSteps: number | null;
  /** Indexes of the images finished so far. */
  done: number[];
  error: string | null;
}

/** A task at its end. */
export interface FinishedTask {
  status: TaskStatus;
  error: string | null;
  /** The finished images; `url` may be relative to the service's URL. */
  images: { index: number; url: string }[];
}

/** The service, as `generate` needs it. */
export interface GenerateTransport {
  /** Which protocol, for messages. */
  readonly name: string;
  /** True when updates carry each image's sampler step (else progress per image is estimated). */
  readonly perImageSteps: boolean;
  /** Creates the task; resolves with its id. */
  submit(request: GenerateRequest): Promise<string>;
  /** The task's updates, ending with the first final one. */
  watch(taskId: string): AsyncIterable<TaskUpdate>;
  /** The task as it ended, with its image URLs. */
  result(taskId: string): Promise<FinishedTask>;
  /** Asks the service to cancel the task. */
  cancel(taskId: string): Promise<void>;
  close(): Promise<void>;
}

/** Options of `createTransport`. */
export interface TransportOptions {
  /** The service's base URL, e.g. http://127.0.0.1:9000 (GraphQL is at `/graphql` below it). */
  url: string;
  /** Longest wait for an HTTP answer, in ms (the upload included). @default 120_000 */
  timeoutMs?: number;
  /** The API key, sent as `Authorization: Bearer` on every request. @default none (an open service) */
  apiKey?: string;
}

/** The transport `generate` uses. */
export function createTransport(options: TransportOptions): GenerateTransport {
  return new SdkTransport(options);
}

class SdkTransport implements GenerateTransport {
  readonly name = 'GraphQL';
  readonly perImageSteps = true;
  private readonly url: string;
  private readonly endpoint: string;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly client: KontextClient;

  constructor(options: TransportOptions) {
    this.url = options.url;
    this.endpoint = new URL('graphql', `${options.url}/`).href;
    this.apiKey = options.apiKey;
    const timeoutMs = (this.timeoutMs = options.timeoutMs ?? 120_000);
    this.client = createKontextClient({
      url: this.endpoint,
      // Node 20 has no global WebSocket.
      webSocketImpl: WebSocket,
      // Over HTTP as a Bearer header, over graphql-ws in connection_init.
      ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
      // Network failures become "not reachable" (exit 3), like every other call to the service.
      fetch: async (input, init) => {
        try {
          return await fetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(timeoutMs) });
        } catch (err) {
          throw unreachable(options.url, err, timeoutMs);
        }
      },
    });
  }

  async submit(request: GenerateRequest): Promise<string> {
    await this.checkKey();
    const { referenceImage, fileName, description, count, size, steps, guidance, seed } = request;
    const result = await this.call(() =>
      this.client.generate({ referenceImage, fileName, description, count, size, steps, guidance, ...(seed === undefined ? {} : { seed }) }),
    );
    if (result.__typename === 'GenerateSuccess') return result.task.id;
    const what =
      result.__typename === 'ValidationError'
        ? `${result.field}: ${result.message}`
        : result.__typename === 'QuotaExceededError'
          ? `${result.message} (retry in ${result.retryAfterSeconds} s)`
          : result.message;
    throw new CommandError(`the service refused the request: ${what}`);
  }

  async *watch(taskId: string): AsyncIterable<TaskUpdate> {
    const done = new Set<number>();
    let first = true;
    try {
      for await (const frame of this.client.watch(taskId)) {
        if (first) {
          first = false;
          // A frame names only the image finished in it: the images finished before the first one come from the task.
          for (const image of (await this.call(() => this.client.task(taskId)))?.images ?? []) done.add(image.index);
        }
        if (frame.image) done.add(frame.image.index);
        yield toUpdate(frame, done);
      }
    } catch (err) {
      // A GraphQL error (unknown task) is the service's answer; anything else means the socket gave up.
      if (err instanceof KontextError && err.errors.length > 0) throw new CommandError(`following task ${taskId} failed: ${err.message}`);
      if (err instanceof CommandError) throw err;
      // 4401/4403: the service answered, refusing the key (graphql-ws has no HTTP status to carry it).
      const refused = err instanceof KontextError && /^WebSocket closed: 440[13]\b/.test(err.message);
      if (refused) throw new CommandError(`following task ${taskId} was refused by the service at ${this.url}: ${err.message} (pass --api-key or set KONTEXT_API_KEY)`);
      throw new ServiceUnreachableError(this.url, `progress stream: ${(err as Error).message}`, false);
    }
  }

  async result(taskId: string): Promise<FinishedTask> {
    const task = await this.call(() => this.client.task(taskId));
    if (!task) throw new CommandError(`task ${taskId} is gone from the service`);
    return { status: lower(task.status), error: task.error, images: task.images.map(({ index, url }) => ({ index, url })) };
  }

  async cancel(taskId: string): Promise<void> {
    await this.call(() => this.client.cancel(taskId));
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /**
   * Asks `{ __typename }` with the key first: a service refuses a missing or wrong key without
   * reading the upload and closes the connection, which fetch reports as a broken pipe, not the 401.
   */
  private async checkKey(): Promise<void> {
    let res: Response;
    try {
      res = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...authorizationHeader(this.apiKey) },
        body: JSON.stringify({ query: '{ __typename }' }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw unreachable(this.url, err, this.timeoutMs);
    }
    if (res.status !== 401) return void (await res.body?.cancel());
    const reply = (await res.json().catch(() => ({}))) as { errors?: { message?: string }[] };
    const message = reply.errors?.map((e) => e.message).join('; ') || 'no valid API key';
    throw new CommandError(`the service at ${this.url} refused the request (401): ${message} (pass --api-key or set KONTEXT_API_KEY)`);
  }

  /** Runs an SDK call; its protocol errors become command errors with the service named. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof KontextError && (err.status === 401 || err.status === 403)) {
        const hint = err.status === 401 ? 'pass --api-key or set KONTEXT_API_KEY' : "create a key with the scope it names: 'kontext keys create --scopes ...'";
        throw new CommandError(`the service at ${this.url} refused the request (${err.status}): ${err.message} (${hint})`);
      }
      if (err instanceof KontextError) throw new CommandError(`the service at ${this.url} answered with an error: ${err.message}`);
      throw err;
    }
  }
}

function toUpdate(frame: TaskProgress, done: ReadonlySet<number>): TaskUpdate {
  return {
    status: lower(frame.status),
    progress: frame.progress,
    queuePosition: frame.queuePosition,
    imageIndex: frame.imageIndex,
    step: frame.step,
    totalSteps: frame.totalSteps,
    done: [...done].sort((a, b) => a - b),
    error: frame.error,
  };
}

/** GraphQL's enum values are the database's statuses in upper case. */
function lower(status: TaskProgress['status']): TaskStatus {
  return status.toLowerCase() as TaskStatus;
}
