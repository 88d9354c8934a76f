/** The typed SDK end to end against the running service and the ComfyUI simulator. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createKontextClient, KontextError, type KontextClient, type TaskProgress } from '@kontext-gateway/sdk';
import { createApiKey } from '../src/auth/create-api-key.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, type Stack } from './helpers/stack.js';

let stack: Stack;
let kontext: KontextClient;
let ref: Buffer;
beforeAll(async () => {
  stack = await startStack();
  kontext = createKontextClient({ url: `${stack.app.url}/graphql`, webSocketImpl: WebSocket });
  ref = await makeImage('png', 320, 240);
});
afterAll(async () => {
  await kontext?.close();
  await stack?.close();
});

describe('the SDK', () => {
  let taskId: string;

  it('generates with a Buffer and watches the task to COMPLETED', async () => {
    const result = await kontext.generate({ referenceImage: ref, description: 'make it night', count: 2, size: '256x256', steps: 4, seed: 7 });
    if (result.__typename !== 'GenerateSuccess') throw new Error(`generate: ${JSON.stringify(result)}`);
    expect(result.task).toMatchObject({ status: 'PENDING', count: 2, size: '256x256', steps: 4, seed: 7, guidance: 2.5, images: [] });
    taskId = result.task.id;

    const frames: TaskProgress[] = [];
    for await (const frame of kontext.watch(taskId)) frames.push(frame);
    const last = frames.at(-1)!;
    expect(last).toMatchObject({ taskId, status: 'COMPLETED', progress: 100 });
    for (let i = 1; i < frames.length; i++) expect(frames[i]!.seq).toBeGreaterThan(frames[i - 1]!.seq);
  });

  it('reads the task and lists it', async () => {
    const task = await kontext.task(taskId);
    expect(task).toMatchObject({ id: taskId, status: 'COMPLETED', progress: 100, error: null });
    expect(task!.images.map((i) => [i.index, i.seed, i.width, i.height])).toEqual([
      [0, 7, 256, 256],
      [1, 8, 256, 256],
    ]);
    const image = await fetch(`${stack.app.url}${task!.images[0]!.url}`);
    expect(image.status).toBe(200);
    expect(await kontext.task('no-such-task')).toBeNull();

    const page = await kontext.tasks({ first: 10, status: 'COMPLETED' });
    expect(page.edges.map((e) => e.node.id)).toContain(taskId);
    expect(page.pageInfo.hasNextPage).toBe(false);
  });

  it('cancels a task, and its watcher ends with CANCELLED', async () => {
    const result = await kontext.generate({ referenceImage: new Blob([new Uint8Array(ref)]), fileName: 'ref.png', description: 'slow', count: 4, size: '256x256', steps: 100 });
    if (result.__typename !== 'GenerateSuccess') throw new Error(`generate: ${JSON.stringify(result)}`);
    const statuses: string[] = [];
    let cancelled = false;
    for await (const frame of kontext.watch(result.task.id)) {
      statuses.push(frame.status);
      if (!cancelled && frame.status === 'PROCESSING' && frame.step !== null) {
        cancelled = true;
        expect(await kontext.cancel(result.task.id)).toMatchObject({ id: result.task.id, status: 'CANCELLED' });
      }
    }
    expect(statuses.at(-1)).toBe('CANCELLED');
    expect(await kontext.cancel('no-such-task')).toBeNull();
  });

  it('watches over SSE: the same frames in seq order to COMPLETED; an unknown task throws; the signal ends the watch', async () => {
    const result = await kontext.generate({ referenceImage: ref, description: 'over sse', count: 2, size: '256x256', steps: 4 });
    if (result.__typename !== 'GenerateSuccess') throw new Error(`generate: ${JSON.stringify(result)}`);
    const frames: TaskProgress[] = [];
    for await (const frame of kontext.watch(result.task.id, { transport: 'sse' })) frames.push(frame);
    expect(frames.at(-1)).toMatchObject({ taskId: result.task.id, status: 'COMPLETED', progress: 100 });
    expect(frames.filter((f) => f.image !== null).map((f) => f.image!.index)).toEqual([0, 1]);
    for (let i = 1; i < frames.length; i++) expect(frames[i]!.seq).toBeGreaterThan(frames[i - 1]!.seq);

    await expect(kontext.watch('no-such-task', { transport: 'sse' }).next()).rejects.toMatchObject({ name: 'KontextError', message: expect.stringMatching(/not found/) as unknown });

    // A long task: aborting the signal ends the loop without an error, and the server sees the stream go.
    const slow = await kontext.generate({ referenceImage: ref, description: 'slow over sse', count: 1, size: '256x256', steps: 100 });
    if (slow.__typename !== 'GenerateSuccess') throw new Error(`generate: ${JSON.stringify(slow)}`);
    const stop = new AbortController();
    const seen: TaskProgress[] = [];
    for await (const frame of kontext.watch(slow.task.id, { transport: 'sse', signal: stop.signal })) {
      seen.push(frame);
      if (frame.step !== null) stop.abort();
    }
    expect(seen.at(-1)!.status).toBe('PROCESSING');
    expect(await kontext.cancel(slow.task.id)).toMatchObject({ status: 'CANCELLED' });
  });

  it('reports limits as typed results and protocol errors as KontextError', async () => {
    const refused = await kontext.generate({ referenceImage: ref, description: 'x', steps: 101 });
    expect(refused).toMatchObject({ __typename: 'ValidationError', field: 'steps' });
    await expect(kontext.tasks({ first: 1000 })).rejects.toBeInstanceOf(KontextError);
    const watching = kontext.watch('no-such-task');
    await expect(watching.next()).rejects.toThrow('Task no-such-task not found');
  });
});

describe('the SDK with an API key', () => {
  let keyed: Stack;
  let url: string;
  const clients: KontextClient[] = [];
  const client = (apiKey?: string) => {
    const c = createKontextClient({ url, webSocketImpl: WebSocket, ...(apiKey !== undefined ? { apiKey } : {}) });
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    keyed = await startStack();
    url = `${keyed.app.url}/graphql`;
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await keyed?.close();
  });

  it('sends the key on HTTP and in connection_init: generates, watches over graphql-ws, reads, lists; image URLs work without it', async () => {
    const { key } = await createApiKey(keyed.app.db, { name: 'sdk' });
    const anonymous = client();
    await until('the service requires keys', async () => {
      try {
        await anonymous.tasks();
        return false;
      } catch (err) {
        return err instanceof KontextError && err.status === 401;
      }
    });
    await expect(anonymous.tasks()).rejects.toMatchObject({ status: 401, errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });

    const kontext = client(key);
    const result = await kontext.generate({ referenceImage: ref, description: 'make it night', size: '256x256', steps: 2 });
    if (result.__typename !== 'GenerateSuccess') throw new Error(`generate: ${JSON.stringify(result)}`);
    const frames: TaskProgress[] = [];
    for await (const frame of kontext.watch(result.task.id)) frames.push(frame);
    expect(frames.at(-1)).toMatchObject({ status: 'COMPLETED', progress: 100 });
    const task = await kontext.task(result.task.id);
    expect(task!.images[0]!.url).toMatch(/&sig=/);
    expect((await fetch(`${keyed.app.url}${task!.images[0]!.url}`)).status).toBe(200);
    expect((await kontext.tasks()).edges.map((e) => e.node.id)).toEqual([result.task.id]);

    // A wrong key: 401 over HTTP, and the socket closed with 4401 for watch.
    const wrong = client('kx_wrong');
    await expect(wrong.task(result.task.id)).rejects.toMatchObject({ status: 401 });
    await expect(wrong.watch(result.task.id).next()).rejects.toMatchObject({ closeCode: 4401, message: expect.stringMatching(/4401/) as unknown });
    await expect(wrong.watch(result.task.id, { transport: 'sse' }).next()).rejects.toMatchObject({ status: 401, errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
    // The key works over SSE as over graphql-ws.
    const overSse: string[] = [];
    for await (const frame of kontext.watch(result.task.id, { transport: 'sse' })) overSse.push(frame.status);
    expect(overSse.at(-1)).toBe('COMPLETED');
  });

  it('returns QuotaExceededError as a typed result', async () => {
    const { key } = await createApiKey(keyed.app.db, { name: 'one a minute', ratePerMinute: 1 });
    const kontext = client(key);
    expect((await kontext.generate({ referenceImage: ref, description: 'first', size: '256x256', steps: 1 })).__typename).toBe('GenerateSuccess');
    const refused = await kontext.generate({ referenceImage: ref, description: 'second', size: '256x256', steps: 1 });
    if (refused.__typename !== 'QuotaExceededError') throw new Error(`generate: ${JSON.stringify(refused)}`);
    expect(refused.limit).toBe('RATE');
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
  });
});
