/**
 * Talking GraphQL to a running service the way outside clients do: JSON over HTTP, the multipart
 * request spec for uploads, graphql-ws over a real WebSocket, and SSE.
 */
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { expect } from 'vitest';

/** The CSRF header Yoga requires on multipart requests. */
export const CSRF = { 'x-graphql-yoga-csrf': '1' } as const;

export interface GraphQLErrorBody {
  message: string;
  path?: (string | number)[];
  extensions?: Record<string, unknown>;
}

export interface GraphQLBody<T> {
  data?: T | null;
  errors?: GraphQLErrorBody[];
}

/** A JSON POST to /graphql, whatever its status. */
export async function gqlResponse<T>(
  baseUrl: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: GraphQLBody<T> }> {
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as GraphQLBody<T> };
}

/** A JSON POST to /graphql that must answer 200. */
export async function gql<T>(baseUrl: string, query: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}): Promise<GraphQLBody<T>> {
  const { status, body } = await gqlResponse<T>(baseUrl, query, variables, headers);
  if (status !== 200) throw new Error(`POST /graphql: ${status} ${JSON.stringify(body)}`);
  return body;
}

/** `gql` that fails the test on errors and returns `data`. */
export async function gqlData<T>(baseUrl: string, query: string, variables?: Record<string, unknown>, headers: Record<string, string> = {}): Promise<T> {
  const body = await gql<T>(baseUrl, query, variables, headers);
  expect(body.errors).toBeUndefined();
  return body.data!;
}

/** The `Authorization` header of an API key. */
export function bearer(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

export const GENERATE = /* GraphQL */ `
  mutation Generate($input: GenerateInput!) {
    generate(input: $input) {
      __typename
      ... on GenerateSuccess { task { id status progress count size steps guidance seed queuePosition createdAt images { index url } } }
      ... on ValidationError { field message }
      ... on UploadRejectedError { reason message }
      ... on QuotaExceededError { limit retryAfterSeconds message }
    }
  }
`;

export type GenerateResult =
  | { __typename: 'GenerateSuccess'; task: { id: string; status: string; progress: number; count: number; size: string; steps: number; guidance: number; seed: number; queuePosition: number | null; createdAt: string; images: { index: number; url: string }[] } }
  | { __typename: 'ValidationError'; field: string; message: string }
  | { __typename: 'UploadRejectedError'; reason: string; message: string }
  | { __typename: 'QuotaExceededError'; limit: string; retryAfterSeconds: number; message: string };

/** A GraphQL multipart request body (operations, map, then the file as part "0"). */
export function multipart(query: string, input: Record<string, unknown>, file: Buffer | null, fileName = 'ref.png'): FormData {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query, variables: { input: { ...input, referenceImage: null } } }));
  form.set('map', JSON.stringify({ 0: ['variables.input.referenceImage'] }));
  // Blob's typings (lib.dom, which Yoga's types pull in) want a plain ArrayBuffer; Node's Buffers from sharp are.
  if (file) form.set('0', new Blob([file as Uint8Array<ArrayBuffer>], { type: 'image/png' }), fileName);
  return form;
}

/** Posts `generate` as a multipart request (with the CSRF header unless `headers` says otherwise). */
export async function postGenerate(baseUrl: string, input: Record<string, unknown>, file: Buffer | null, headers: Record<string, string> = CSRF): Promise<Response> {
  return fetch(`${baseUrl}/graphql`, { method: 'POST', body: multipart(GENERATE, input, file), headers });
}

/** `generate` that must reach the resolver; returns its union member. `headers` are sent besides the CSRF header. */
export async function generate(baseUrl: string, input: Record<string, unknown>, file: Buffer | null, headers: Record<string, string> = {}): Promise<GenerateResult> {
  const res = await postGenerate(baseUrl, input, file, { ...CSRF, ...headers });
  const body = (await res.json()) as GraphQLBody<{ generate: GenerateResult }>;
  expect(res.status, JSON.stringify(body)).toBe(200);
  expect(body.errors).toBeUndefined();
  return body.data!.generate;
}

/** `generate` that must succeed; returns the task id. */
export async function generateTask(baseUrl: string, input: Record<string, unknown>, file: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const result = await generate(baseUrl, input, file, headers);
  if (result.__typename !== 'GenerateSuccess') throw new Error(`generate: ${JSON.stringify(result)}`);
  return result.task.id;
}

/** A frame as the tests select it. */
export interface Frame {
  taskId: string;
  seq: number;
  status: string;
  progress: number;
  imageIndex: number | null;
  step: number | null;
  totalSteps: number | null;
  queuePosition: number | null;
  image: { index: number; url: string; width: number; height: number; seed: number; contentType: string; bytes: number } | null;
  error: string | null;
}

export const WATCH = /* GraphQL */ `
  subscription Watch($taskId: ID!) {
    taskProgress(taskId: $taskId) {
      taskId seq status progress imageIndex step totalSteps queuePosition error
      image { index url width height seed contentType bytes }
    }
  }
`;

/**
 * A graphql-ws client that never reconnects (a closed socket is a test failure, not something to
 * hide). `connectionParams` is the `connection_init` payload (where the API key goes).
 */
export function wsClient(
  baseUrl: string,
  options: { headers?: Record<string, string>; lazy?: boolean; connectionParams?: Record<string, unknown>; onClosed?: (event: unknown) => void } = {},
): Client {
  const url = `${baseUrl.replace(/^http/, 'ws')}/graphql`;
  // ws lets a client set headers (Origin), which a browser's WebSocket cannot.
  const Impl = options.headers
    ? class extends WebSocket {
        constructor(address: string, protocols?: string | string[]) {
          super(address, protocols, { headers: options.headers });
        }
      }
    : WebSocket;
  return createClient({
    url,
    webSocketImpl: Impl,
    retryAttempts: 0,
    lazy: options.lazy ?? true,
    ...(options.connectionParams ? { connectionParams: options.connectionParams } : {}),
    ...(options.onClosed ? { on: { closed: options.onClosed } } : {}),
  });
}

/** Every result of one operation, until it completes. */
export async function collect<T>(client: Client, query: string, variables: Record<string, unknown>): Promise<GraphQLBody<T>[]> {
  const results: GraphQLBody<T>[] = [];
  for await (const result of client.iterate<T>({ query, variables })) results.push(result as GraphQLBody<T>);
  return results;
}

/** Every frame of `taskProgress` over graphql-ws, until it completes (errors fail the test). */
export async function watchWs(client: Client, taskId: string): Promise<Frame[]> {
  const results = await collect<{ taskProgress: Frame }>(client, WATCH, { taskId });
  for (const r of results) expect(r.errors).toBeUndefined();
  return results.map((r) => r.data!.taskProgress);
}

/** Every result of a subscription over SSE (POST with `Accept: text/event-stream`), until it completes. */
export async function sse<T>(baseUrl: string, query: string, variables: Record<string, unknown>, headers: Record<string, string> = {}): Promise<GraphQLBody<T>[]> {
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const text = await res.text();
  const results: GraphQLBody<T>[] = [];
  let completed = false;
  for (const block of text.split('\n\n')) {
    const lines = block.split('\n');
    const event = lines.find((l) => l.startsWith('event:'))?.slice(6).trim();
    const data = lines
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trim())
      .join('\n');
    if (event === 'next') results.push(JSON.parse(data) as GraphQLBody<T>);
    if (event === 'complete') completed = true;
  }
  expect(completed, 'the SSE stream ends with a complete event').toBe(true);
  return results;
}

/**
 * The frames of one subscription to a task that completed: seq grows by one, progress never goes
 * back, it ends with the one final frame, and each finished image is carried by exactly one frame.
 */
export function expectCompleteStream(frames: Frame[], taskId: string, count: number): void {
  expect(frames.length).toBeGreaterThan(0);
  for (const f of frames) expect(f.taskId).toBe(taskId);
  for (let i = 1; i < frames.length; i++) {
    expect(frames[i]!.seq, `seq after ${frames[i - 1]!.seq}`).toBe(frames[i - 1]!.seq + 1);
    expect(frames[i]!.progress).toBeGreaterThanOrEqual(frames[i - 1]!.progress);
  }
  const last = frames.at(-1)!;
  expect(last.status).toBe('COMPLETED');
  expect(last.progress).toBe(100);
  expect(frames.filter((f) => f.status === 'COMPLETED')).toHaveLength(1);
  const carried = frames.flatMap((f) => (f.image ? [f.image.index] : [])).sort();
  expect(carried).toEqual(Array.from({ length: count }, (_, i) => i));
}

/** A raw HTTP request on a given agent (to control keep-alive and chunking). */
export function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string | number>; body?: Buffer | Buffer[]; agent?: Agent; timeoutMs?: number },
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string; reusedSocket: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: options.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), reusedSocket: req.reusedSocket });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`${options.method ?? 'GET'} ${url}: no reply within ${options.timeoutMs ?? 5000} ms (hung connection)`));
    }, options.timeoutMs ?? 5000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const parts = options.body === undefined ? [] : Array.isArray(options.body) ? options.body : [options.body];
    for (const part of parts) req.write(part);
    req.end();
  });
}

/** A multipart body as bytes, with its content type (for raw requests). */
export async function multipartBytes(query: string, input: Record<string, unknown>, file: Buffer | null): Promise<{ body: Buffer; contentType: string }> {
  const req = new Request('http://local/', { method: 'POST', body: multipart(query, input, file) });
  return { body: Buffer.from(await req.arrayBuffer()), contentType: req.headers.get('content-type')! };
}
