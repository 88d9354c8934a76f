/**
 * The GraphQL API end to end over raw HTTP, SSE and graphql-ws against the real service and the
 * ComfyUI simulator: uploads, live progress, the task list, limits and the security defaults.
 */
import { readdir } from 'node:fs/promises';
import { Agent } from 'node:http';
import { join } from 'node:path';
import type { LogEvent } from 'kysely';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { makeImage, pngOfSize } from './helpers/images.js';
import {
  collect,
  CSRF,
  expectCompleteStream,
  GENERATE,
  generate,
  generateTask,
  gql,
  gqlData,
  multipartBytes,
  postGenerate,
  rawRequest,
  sse,
  WATCH,
  watchWs,
  wsClient,
  type Frame,
  type GraphQLBody,
} from './helpers/graphql.js';
import { startStack, until, type Stack } from './helpers/stack.js';

const MAX_FILE = 64 * 1024;
/** Fast tasks: 256x256 at 10 ms a step; enough steps that a subscriber sent right after `generate` sees the first image finish. */
const FAST_TASK = { description: 'make it night, keep the car', size: '256x256', steps: 10 };

let stack: Stack;
let url: string;
let ref: Buffer;
beforeAll(async () => {
  stack = await startStack({ config: { maxFileSize: MAX_FILE } });
  url = stack.app.url;
  ref = await makeImage('png', 320, 240);
});
afterAll(async () => {
  await stack?.close();
});

const TASK = /* GraphQL */ `
  query Task($id: ID!) {
    task(id: $id) { id status progress count error queuePosition createdAt updatedAt images { index url width height seed contentType bytes } }
  }
`;

interface TaskBody {
  id: string;
  status: string;
  progress: number;
  count: number;
  error: string | null;
  queuePosition: number | null;
  createdAt: string;
  updatedAt: string;
  images: NonNullable<Frame['image']>[];
}

/** Fetches an image by the URL the API gave and checks it against what the API said about it. */
async function expectImageServed(image: NonNullable<Frame['image']>, taskId: string): Promise<void> {
  expect(image.url).toBe(`/api/image/${taskId}?index=${image.index}`);
  const res = await fetch(`${url}${image.url}`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe(image.contentType);
  expect((await res.arrayBuffer()).byteLength).toBe(image.bytes);
}

const CANCEL = /* GraphQL */ `mutation Cancel($id: ID!) { cancelTask(id: $id) { id status error images { index } } }`;

/**
 * Creates a task that waits in the queue behind three long ones (MAX_CONCURRENT_TASKS is 3), starts
 * `watch` on it, and releases the queue once `subscribers` subscriptions listen: every watcher then
 * sees the task from PENDING to its end, however slow the machine is.
 */
async function watchFromQueue<T>(subscribers: number, watch: (id: string) => Promise<T>): Promise<{ id: string; watched: T }> {
  const blockers: string[] = [];
  for (let i = 0; i < 3; i++) blockers.push(await generateTask(url, { ...FAST_TASK, count: 1, steps: 100 }, ref));
  const id = await generateTask(url, { ...FAST_TASK, count: 2 }, ref);
  const watching = watch(id);
  await until('every watcher to listen', () => stack.app.service.watchers() >= subscribers);
  for (const blocker of blockers) await gqlData(url, CANCEL, { id: blocker });
  return { id, watched: await watching };
}

/** A task that ran to completion while watched over graphql-ws (made once, shared by the tests that need one). */
let finished: Promise<{ id: string; frames: Frame[] }> | undefined;
function finishedTask(): Promise<{ id: string; frames: Frame[] }> {
  finished ??= (async () => {
    const client = wsClient(url);
    try {
      const { id, watched } = await watchFromQueue(1, (taskId) => watchWs(client, taskId));
      return { id, frames: watched };
    } finally {
      await client.dispose();
    }
  })();
  return finished;
}

describe('generate with an upload, then watch the task to completion', () => {
  it('returns the new task with its parameters, PENDING with a queue position', async () => {
    const result = await generate(url, { ...FAST_TASK, count: 1, guidance: 3.5, seed: 42 }, ref);
    expect(result.__typename).toBe('GenerateSuccess');
    if (result.__typename !== 'GenerateSuccess') return;
    expect(result.task).toMatchObject({ status: 'PENDING', progress: 0, count: 1, size: '256x256', steps: 10, guidance: 3.5, seed: 42, images: [] });
    expect(result.task.queuePosition).toBeGreaterThanOrEqual(1);
    expect(Date.parse(result.task.createdAt)).not.toBeNaN();
  });

  it('over graphql-ws: frames in seq order without gaps, progress never going back, one frame per finished image', async () => {
    const { id, frames } = await finishedTask();
    expect(frames[0]).toMatchObject({ status: 'PENDING' });
    expectCompleteStream(frames, id, 2);
    for (const f of frames) if (f.image) await expectImageServed(f.image, id);
    const { task } = await gqlData<{ task: TaskBody }>(url, TASK, { id });
    expect(task).toMatchObject({ id, status: 'COMPLETED', progress: 100, count: 2, error: null, queuePosition: null });
    expect(task.images.map((i) => i.index)).toEqual([0, 1]);
    expect(task.images[1]!.seed).toBe(task.images[0]!.seed + 1);
    for (const image of task.images) {
      expect(image).toMatchObject({ width: 256, height: 256, contentType: 'image/png' });
      await expectImageServed(image, id);
    }
  });

  it('over SSE (POST with Accept: text/event-stream): the same stream', async () => {
    const { id, watched: results } = await watchFromQueue(1, (taskId) => sse<{ taskProgress: Frame }>(url, WATCH, { taskId }));
    for (const r of results) expect(r.errors).toBeUndefined();
    const frames = results.map((r) => r.data!.taskProgress);
    expectCompleteStream(frames, id, 2);
    for (const f of frames) if (f.image) await expectImageServed(f.image, id);
  });

  it('20 subscribers on one task all get the same frames', async () => {
    const clients = Array.from({ length: 20 }, () => wsClient(url));
    try {
      const { id, watched: streams } = await watchFromQueue(20, (taskId) => Promise.all(clients.map((c) => watchWs(c, taskId))));
      for (const frames of streams) expectCompleteStream(frames, id, 2);
      // Each started from the queued state it joined at; from the latest start on they saw the very same frames.
      const from = Math.max(...streams.map((s) => s[0]!.seq));
      const tail = (frames: Frame[]) => frames.filter((f) => f.seq >= from);
      for (const frames of streams) expect(tail(frames)).toEqual(tail(streams[0]!));
      expect(stack.app.bus.subscriberCount()).toBe(0);
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  it('a late subscriber to a finished task gets its final frame, then completion (WS and SSE)', async () => {
    const { id, frames } = await finishedTask();
    const final = frames.at(-1)!;
    const client = wsClient(url);
    try {
      expect(await watchWs(client, id)).toEqual([final]);
    } finally {
      await client.dispose();
    }
    const results = await sse<{ taskProgress: Frame }>(url, WATCH, { taskId: id });
    expect(results.map((r) => r.data?.taskProgress)).toEqual([final]);
  });

  it('an unknown task id is an error (WS and SSE)', async () => {
    const client = wsClient(url);
    try {
      const results = await collect<{ taskProgress: Frame }>(client, WATCH, { taskId: 'no-such-task' });
      expect(results).toHaveLength(1);
      expect(results[0]!.errors).toEqual([expect.objectContaining({ message: 'Task no-such-task not found', extensions: { code: 'NOT_FOUND' } })]);
    } finally {
      await client.dispose();
    }
    const results = await sse<{ taskProgress: Frame }>(url, WATCH, { taskId: 'no-such-task' });
    expect(results[0]!.errors?.[0]?.message).toBe('Task no-such-task not found');
  });

  it('a bad document or a rejected limit fails only its operation: the socket stays open for the next one', async () => {
    const client = wsClient(url, { lazy: false });
    let connections = 0;
    let closed = false;
    client.on('connected', () => connections++);
    client.on('closed', () => (closed = true));
    try {
      const syntax = collect(client, 'subscription { taskProgress(taskId: "x") { seq ', {});
      await expect(syntax).rejects.toEqual([expect.objectContaining({ message: expect.stringMatching(/^Syntax Error/) })]);
      const aliases = Array.from({ length: 20 }, (_, i) => `a${i}: task(id: "x") { id }`).join(' ');
      await expect(collect(client, `query { ${aliases} }`, {})).rejects.toEqual([expect.objectContaining({ message: expect.stringMatching(/aliases/i) })]);
      const invalid = collect(client, 'subscription { taskProgress(taskId: "x") { nope } }', {});
      await expect(invalid).rejects.toEqual([expect.objectContaining({ message: expect.stringMatching(/Cannot query field "nope"/) })]);
      // Still the same socket.
      const { id, frames } = await finishedTask();
      expect(await watchWs(client, id)).toEqual([frames.at(-1)]);
      expect(closed).toBe(false);
      expect(connections).toBe(1);
    } finally {
      await client.dispose();
    }
  });
});

describe('unsubscribing and shutting down', () => {
  it('frees the task’s subscription at once, even while the task is quiet (queued); closing the service ends the rest', async () => {
    // One task at a time: the second waits in the queue and publishes nothing.
    const quiet = await startStack({ config: { maxConcurrentTasks: 1 } });
    try {
      const blocker = await generateTask(quiet.app.url, { ...FAST_TASK, count: 1, steps: 100 }, ref);
      const queued = await generateTask(quiet.app.url, { ...FAST_TASK, count: 1 }, ref);
      const client = wsClient(quiet.app.url);
      const frames: Frame[] = [];
      const unsubscribe = client.subscribe<{ taskProgress: Frame }>(
        { query: WATCH, variables: { taskId: queued } },
        { next: (r) => frames.push(r.data!.taskProgress), error: () => undefined, complete: () => undefined },
      );
      await until('the snapshot', () => frames.length > 0);
      expect(frames[0]).toMatchObject({ status: 'PENDING', queuePosition: 1 });
      expect(quiet.app.bus.subscriberCount()).toBe(1);
      unsubscribe();
      await until('the subscription to be released', () => quiet.app.bus.subscriberCount() === 0, 1000);
      expect((await gqlData<{ task: { status: string } }>(quiet.app.url, TASK, { id: blocker })).task.status).toBe('PROCESSING');

      // Shutting the service down ends open subscriptions with 1001 Going Away, without waiting for them.
      await client.dispose();
      const other = wsClient(quiet.app.url);
      const closedWith = new Promise<number>((resolve) => other.on('closed', (e) => resolve((e as { code: number }).code)));
      other.subscribe({ query: WATCH, variables: { taskId: blocker } }, { next: () => undefined, error: () => undefined, complete: () => undefined });
      await until('the second subscription', () => quiet.app.bus.subscriberCount() === 1);
      const started = Date.now();
      await quiet.app.close();
      expect(Date.now() - started).toBeLessThan(3000);
      expect(await closedWith).toBe(1001);
      await other.dispose();
    } finally {
      await quiet.close();
    }
  });
});

describe('cancelTask', () => {
  it('cancels a running task; its watchers see CANCELLED and completion', async () => {
    const client = wsClient(url, { lazy: false });
    try {
      await new Promise<void>((resolve) => client.on('connected', () => resolve()));
      const id = await generateTask(url, { ...FAST_TASK, count: 4, steps: 100 }, ref);
      const frames: Frame[] = [];
      const watching = (async () => {
        for await (const r of client.iterate<{ taskProgress: Frame }>({ query: WATCH, variables: { taskId: id } })) frames.push(r.data!.taskProgress);
      })();
      await until('the task to be processing', () => frames.some((f) => f.status === 'PROCESSING' && f.step !== null));
      const { cancelTask } = await gqlData<{ cancelTask: { id: string; status: string } }>(url, CANCEL, { id });
      expect(cancelTask).toMatchObject({ id, status: 'CANCELLED' });
      await watching;
      expect(frames.at(-1)!.status).toBe('CANCELLED');
      // Cancelling again leaves it as it is.
      expect((await gqlData<{ cancelTask: { status: string } }>(url, CANCEL, { id })).cancelTask.status).toBe('CANCELLED');
    } finally {
      await client.dispose();
    }
  });

  it('gives null for an unknown id', async () => {
    expect(await gqlData(url, CANCEL, { id: 'no-such-task' })).toEqual({ cancelTask: null });
  });
});

describe('generate checks every limit and answers with a ValidationError naming the field and the range', () => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['count 0', { count: 0 }, 'count', /count must be a whole number from 1 to 4/],
    ['count 5', { count: 5 }, 'count', /count must be a whole number from 1 to 4/],
    ['steps 0', { steps: 0 }, 'steps', /steps must be a whole number from 1 to 100/],
    ['steps 101', { steps: 101 }, 'steps', /steps must be a whole number from 1 to 100/],
    ['guidance -1', { guidance: -1 }, 'guidance', /guidance must be a number from 0 to 20/],
    ['guidance 21', { guidance: 21 }, 'guidance', /guidance must be a number from 0 to 20/],
    ['an empty description', { description: '' }, 'description', /description must be 1 to 2000 characters/],
    ['a 2001-character description', { description: 'x'.repeat(2001) }, 'description', /description must be 1 to 2000 characters/],
    ['size 1000x1000', { size: '1000x1000' }, 'size', /multiples of 16 from 256 to 2048/],
    ['size 4096x1024', { size: '4096x1024' }, 'size', /multiples of 16 from 256 to 2048/],
    ['size big', { size: 'big' }, 'size', /size must be "auto" or WIDTHxHEIGHT/],
  ];
  it.each(cases)('%s', async (_name, change, field, message) => {
    const result = await generate(url, { ...FAST_TASK, ...change }, ref);
    expect(result).toMatchObject({ __typename: 'ValidationError', field });
    if (result.__typename === 'ValidationError') expect(result.message).toMatch(message);
  });

  it('seed -1 (the Seed scalar refuses it before the resolver runs)', async () => {
    const res = await postGenerate(url, { ...FAST_TASK, seed: -1 }, ref);
    const body = (await res.json()) as GraphQLBody<unknown>;
    expect(body.data ?? null).toBeNull();
    expect(body.errors?.[0]?.message).toMatch(/"input\.seed".*Seed must be a whole number from 0 to 9007199254740991/);
  });

  it('seeds 0 and 2^53-1 are accepted and returned as JSON numbers', async () => {
    for (const seed of [0, Number.MAX_SAFE_INTEGER]) {
      const result = await generate(url, { ...FAST_TASK, steps: 1, seed }, ref);
      expect(result).toMatchObject({ __typename: 'GenerateSuccess', task: { seed } });
    }
    const res = await postGenerate(url, { ...FAST_TASK, seed: 2 ** 53 }, ref);
    expect(((await res.json()) as GraphQLBody<unknown>).errors?.[0]?.message).toMatch(/Seed must be/);
  });

  it('stores nothing for a refused request', async () => {
    const before = await readdir(join(stack.config.dataDir, 'uploads'));
    await generate(url, { ...FAST_TASK, steps: 0 }, await makeImage('png', 300, 200, { r: 1, g: 2, b: 3 }));
    expect(await readdir(join(stack.config.dataDir, 'uploads'))).toEqual(before);
  });

  it('the same idempotency key with other parameters is a ValidationError on idempotencyKey', async () => {
    const key = `key-${Date.now()}`;
    const first = await generate(url, { ...FAST_TASK, steps: 1, idempotencyKey: key }, ref);
    if (first.__typename !== 'GenerateSuccess') throw new Error(JSON.stringify(first));
    const again = await generate(url, { ...FAST_TASK, steps: 1, idempotencyKey: key }, ref);
    expect(again).toMatchObject({ __typename: 'GenerateSuccess', task: { id: first.task.id } });
    const other = await generate(url, { ...FAST_TASK, steps: 2, idempotencyKey: key }, ref);
    expect(other).toMatchObject({ __typename: 'ValidationError', field: 'idempotencyKey' });
  });
});

describe('uploads', () => {
  it('a multipart request without a CSRF header is refused with 403; either accepted header passes', async () => {
    const refused = await postGenerate(url, FAST_TASK, ref, {});
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as GraphQLBody<unknown>).errors?.[0]?.message).toMatch(/CSRF/);
    for (const header of ['x-graphql-yoga-csrf', 'apollo-require-preflight']) {
      const res = await postGenerate(url, { ...FAST_TASK, steps: 1 }, ref, { [header]: '1' });
      expect(res.status).toBe(200);
      expect(((await res.json()) as GraphQLBody<{ generate: { __typename: string } }>).data?.generate.__typename).toBe('GenerateSuccess');
    }
  });

  it('a file of exactly MAX_FILE_SIZE bytes is accepted; one byte more is TOO_LARGE', async () => {
    const exact = await generate(url, { ...FAST_TASK, steps: 1 }, await pngOfSize(MAX_FILE));
    expect(exact.__typename).toBe('GenerateSuccess');
    const over = await generate(url, { ...FAST_TASK, steps: 1 }, await pngOfSize(MAX_FILE + 1));
    expect(over).toMatchObject({ __typename: 'UploadRejectedError', reason: 'TOO_LARGE' });
    if (over.__typename === 'UploadRejectedError') expect(over.message).toMatch(/65536/);
  });

  it('not an image: UNSUPPORTED_TYPE', async () => {
    const result = await generate(url, FAST_TASK, Buffer.from('hello, this is not an image\n'.repeat(20)));
    expect(result).toMatchObject({ __typename: 'UploadRejectedError', reason: 'UNSUPPORTED_TYPE' });
  });

  describe('an oversized upload is refused without crashing or hanging the keep-alive connection', () => {
    let agent: Agent;
    beforeAll(() => {
      agent = new Agent({ keepAlive: true, maxSockets: 1 });
    });
    afterAll(() => agent.destroy());

    const followUp = async () => {
      const next = await rawRequest(`${url}/graphql`, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify({ query: '{ __typename }' })),
      });
      expect(next.status).toBe(200);
      expect(JSON.parse(next.body)).toEqual({ data: { __typename: 'Query' } });
    };

    it('over MAX_FILE_SIZE but under the body cap: UploadRejectedError TOO_LARGE', async () => {
      const big = Buffer.concat([ref, Buffer.alloc(100 * 1024, 7)]);
      const { body, contentType } = await multipartBytes(GENERATE, FAST_TASK, big);
      const res = await rawRequest(`${url}/graphql`, { method: 'POST', agent, headers: { ...CSRF, 'content-type': contentType, 'content-length': body.length }, body });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ data: { generate: { __typename: 'UploadRejectedError', reason: 'TOO_LARGE' } } });
      await followUp();
    });

    it('a Content-Length over the body cap: 413 before the body is read', async () => {
      const big = Buffer.concat([ref, Buffer.alloc(1024 * 1024, 7)]);
      const { body, contentType } = await multipartBytes(GENERATE, FAST_TASK, big);
      const res = await rawRequest(`${url}/graphql`, { method: 'POST', agent, headers: { ...CSRF, 'content-type': contentType, 'content-length': body.length }, body });
      expect(res.status).toBe(413);
      await followUp();
    });

    it('a chunked body (no Content-Length) crossing the cap mid-file: a typed rejection, then the connection is closed', async () => {
      const big = Buffer.concat([ref, Buffer.alloc(1024 * 1024, 7)]);
      const { body, contentType } = await multipartBytes(GENERATE, FAST_TASK, big);
      const chunks = Array.from({ length: Math.ceil(body.length / 16_384) }, (_, i) => body.subarray(i * 16_384, (i + 1) * 16_384));
      const res = await rawRequest(`${url}/graphql`, { method: 'POST', agent, headers: { ...CSRF, 'content-type': contentType, 'transfer-encoding': 'chunked' }, body: chunks });
      expect(res.status).toBe(200);
      const { generate: result } = (JSON.parse(res.body) as { data: { generate: { __typename: string; reason: string } } }).data;
      expect(result.__typename).toBe('UploadRejectedError');
      // The body cap trips while the parser still reads ahead of the file: either one is right.
      expect(['TOO_LARGE', 'INCOMPLETE']).toContain(result.reason);
      await followUp();
    });

    it('leaves no partial upload behind', async () => {
      const names = await readdir(join(stack.config.dataDir, 'uploads'));
      expect(names.filter((n) => n.startsWith('.'))).toEqual([]);
    });
  });
});

describe('security defaults', () => {
  it('a foreign origin is refused by default (403, a GraphQL error) and never answered with CORS headers', async () => {
    const origin = 'https://evil.example';
    const preflight = await fetch(`${url}/graphql`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
    const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { origin, 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(((await res.json()) as GraphQLBody<unknown>).errors).toEqual([expect.objectContaining({ message: 'Origin https://evil.example is not allowed (CORS_ORIGINS)' })]);
  });

  it('a WebSocket message over 64 KiB closes that socket (1009), nothing else', async () => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    await new Promise((resolve) => socket.once('open', resolve));
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    socket.send('x'.repeat(65 * 1024));
    expect(await closed).toBe(1009);
    expect((await gql(url, '{ __typename }')).data).toEqual({ __typename: 'Query' });
  });

  it('REST /health is ours, not Yoga’s health check', async () => {
    const res = await fetch(`${url}/health`);
    expect(((await res.json()) as { status: string }).status).toBe('ok');
    expect((await fetch(`${url}/api/task-status/health`)).status).toBe(404);
  });

  it('GraphiQL opens at /graphql with an example query and a taskProgress subscription over WS', async () => {
    const res = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toMatch(/Kontext Gateway/);
    expect(html).toMatch(/query RecentTasks/);
    expect(html).toMatch(/subscription WatchTask/);
    expect(html).toMatch(/"subscriptionsProtocol":"WS"/);
  });

  it('the example in GraphiQL runs', async () => {
    const body = await gql(url, `query RecentTasks { tasks(first: 5) { edges { node { id status progress description queuePosition images { index url width height } } } pageInfo { hasNextPage endCursor } } }`);
    expect(body.errors).toBeUndefined();
  });
});

describe('the task list, DataLoader, PUBLIC_URL, CORS_ORIGINS and masking (a second service)', () => {
  let other: Stack;
  let counting = false;
  let selects = 0;
  const onQuery = (event: LogEvent) => {
    // The request only reads; the engine's lease renewals (updates) may run at any moment.
    if (counting && /^\s*select/i.test(event.query.sql)) selects++;
  };
  const LIST = /* GraphQL */ `{ tasks(first: 50) { edges { node { images { url } } } } }`;

  beforeAll(async () => {
    other = await startStack({
      config: { publicUrl: 'https://gpu.example.com', corsOrigins: ['https://app.example'] },
      // No scheduling ticks: tasks still flow (the engine wakes on every new task and finished image),
      // and an idle engine then leaves the database alone while queries are counted.
      app: { engine: { tickMs: 3_600_000 }, onQuery },
    });
  });
  afterAll(async () => {
    await other?.close();
  });

  async function addTasks(n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(await generateTask(other.app.url, { description: `task ${i}`, size: '256x256', steps: 1 }, ref));
    await until('every task to complete', async () => {
      const { tasks } = await gqlData<{ tasks: { edges: { node: { status: string } }[] } }>(other.app.url, `{ tasks(first: 100) { edges { node { status } } } }`);
      return tasks.edges.every((e) => e.node.status === 'COMPLETED');
    });
    return ids;
  }

  async function countListQueries(): Promise<{ selects: number; tasks: number; urls: string[] }> {
    selects = 0;
    counting = true;
    try {
      const { tasks } = await gqlData<{ tasks: { edges: { node: { images: { url: string }[] } }[] } }>(other.app.url, LIST);
      return { selects, tasks: tasks.edges.length, urls: tasks.edges.flatMap((e) => e.node.images.map((i) => i.url)) };
    } finally {
      counting = false;
    }
  }

  let ids: string[] = [];
  it('tasks(first: 50) { edges { node { images { url } } } } costs the same SQL for 2 tasks as for 10', async () => {
    ids = await addTasks(2);
    const two = await countListQueries();
    expect(two.tasks).toBe(2);
    ids.push(...(await addTasks(8)));
    const ten = await countListQueries();
    expect(ten.tasks).toBe(10);
    expect(ten.selects).toBe(two.selects);
    expect(ten.selects).toBeLessThanOrEqual(2);
    // PUBLIC_URL makes image URLs absolute.
    expect(ten.urls).toHaveLength(10);
    for (const u of ten.urls) expect(u).toMatch(/^https:\/\/gpu\.example\.com\/api\/image\/[^?]+\?index=0$/);
  });

  it('pages newest first with first/after/hasNextPage, and filters by status', async () => {
    const PAGE = /* GraphQL */ `query Page($first: Int, $after: String, $status: TaskStatus) {
      tasks(first: $first, after: $after, status: $status) { edges { cursor node { id createdAt status } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } }
    }`;
    interface Page {
      tasks: { edges: { cursor: string; node: { id: string; createdAt: string; status: string } }[]; pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null } };
    }
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const { tasks }: Page = await gqlData<Page>(other.app.url, PAGE, { first: 3, after });
      pages++;
      for (const e of tasks.edges) expect(e.cursor).toBe(e.node.id);
      seen.push(...tasks.edges.map((e) => e.node.id));
      expect(tasks.pageInfo.startCursor).toBe(tasks.edges[0]?.cursor ?? null);
      expect(tasks.pageInfo.endCursor).toBe(tasks.edges.at(-1)?.cursor ?? null);
      expect(tasks.pageInfo.hasPreviousPage).toBe(after !== null);
      if (!tasks.pageInfo.hasNextPage) break;
      after = tasks.pageInfo.endCursor;
    }
    expect(pages).toBe(4);
    expect(seen).toEqual([...ids].reverse());

    // The default page is 20, the largest 100.
    expect((await gqlData<Page>(other.app.url, PAGE, {})).tasks.edges).toHaveLength(10);
    const tooMany = await gql(other.app.url, PAGE, { first: 101 });
    expect(tooMany.errors?.[0]?.message).toBe('first must be a whole number from 0 to 100');
    // A cursor whose task is gone is an error, not a silent restart from the newest (a pager would loop).
    const gone = await gql(other.app.url, PAGE, { first: 3, after: 'deleted-task' });
    expect(gone.errors?.[0]?.message).toBe('after: no task deleted-task (it may have been deleted); start again without a cursor');

    // A status filter.
    const cancelled = await generateTask(other.app.url, { description: 'to cancel', size: '256x256', steps: 100 }, ref);
    await gqlData(other.app.url, `mutation { cancelTask(id: "${cancelled}") { id } }`);
    const onlyCancelled = await gqlData<Page>(other.app.url, PAGE, { status: 'CANCELLED' });
    expect(onlyCancelled.tasks.edges.map((e) => e.node.id)).toEqual([cancelled]);
    const completed = await gqlData<Page>(other.app.url, PAGE, { status: 'COMPLETED', first: 100 });
    expect(completed.tasks.edges.map((e) => e.node.id)).toEqual([...ids].reverse());
  });

  it('with CORS_ORIGINS, a foreign origin gets neither its origin nor credentials back, and its WebSocket is refused', async () => {
    const origin = 'https://evil.example';
    const res = await fetch(`${other.app.url}/graphql`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(res.headers.get('access-control-allow-origin')).not.toBe(origin);
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    const listed = await fetch(`${other.app.url}/graphql`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(listed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(listed.headers.get('access-control-allow-credentials')).toBeNull();

    // Refused before the handshake: the page never gets a socket.
    const foreign = new WebSocket(`${other.app.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws', { headers: { origin } });
    const status = await new Promise<number>((resolve, reject) => {
      foreign.once('unexpected-response', (req, reply) => {
        req.destroy();
        resolve(reply.statusCode ?? 0);
      });
      foreign.once('open', () => reject(new Error('the upgrade was accepted')));
    });
    expect(status).toBe(403);

    const allowed = wsClient(other.app.url, { headers: { origin: 'https://app.example' } });
    expect(await collect(allowed, '{ __typename }', {})).toEqual([{ data: { __typename: 'Query' } }]);
    await allowed.dispose();
  });

  it('masks unexpected errors', async () => {
    // Break the database under the running service: the error is real, its text must not leak.
    await sql`alter table images rename to images_away`.execute(other.app.db);
    try {
      const body = await gql(other.app.url, `query($id: ID!) { task(id: $id) { id images { url } } }`, { id: ids[0] });
      expect(body.errors).toEqual([expect.objectContaining({ message: 'Unexpected error.' })]);
      expect(JSON.stringify(body)).not.toMatch(/images_away|no such table|SQLITE/i);
    } finally {
      await sql`alter table images_away rename to images`.execute(other.app.db);
    }
  });
});
