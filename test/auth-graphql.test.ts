/**
 * API keys on every GraphQL transport (issue 12): GraphQL over HTTP, SSE and graphql-ws, against the
 * real service. Open until the first key; then no key, a wrong key or a revoked one is refused (401
 * UNAUTHENTICATED, or close 4401 at connection_init), a key without the scope gets FORBIDDEN,
 * another key's task is exactly an unknown one, an admin key sees all, and image URLs are signed.
 */
import { Agent, fetch as undiciFetch, FormData as UndiciFormData } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createApiKey } from '../src/auth/create-api-key.js';
import { revokeApiKey } from '../src/db/api-keys.js';
import type { KeyScope } from '../src/db/types.js';
import {
  bearer,
  collect,
  CSRF,
  GENERATE,
  generate,
  generateTask,
  gqlData,
  gqlResponse,
  postGenerate,
  sse,
  WATCH,
  watchWs,
  wsClient,
  type Frame,
  type GraphQLBody,
} from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, type Stack } from './helpers/stack.js';

const SMALL = { description: 'make it night', count: 1, size: '256x256', steps: 2 } as const;
const TASK = /* GraphQL */ `query T($id: ID!) { task(id: $id) { id status images { index url } } }`;
const TASKS = /* GraphQL */ `{ tasks(first: 100) { edges { node { id } } } }`;
const CANCEL = /* GraphQL */ `mutation C($id: ID!) { cancelTask(id: $id) { id status } }`;

type TaskBody = { task: { id: string; status: string; images: { index: number; url: string }[] } | null };

/** What a graphql-ws server answers to `connection_init` with `payload`: an ack, or the close code. */
function connectionInit(baseUrl: string, payload?: unknown): Promise<'ack' | { code: number; reason: string }> {
  const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
  return new Promise((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify(payload === undefined ? { type: 'connection_init' } : { type: 'connection_init', payload })));
    ws.on('message', (data) => {
      if ((JSON.parse(String(data)) as { type: string }).type !== 'connection_ack') return;
      resolve('ack');
      ws.close(1000);
    });
    ws.on('close', (code, reason) => resolve({ code, reason: String(reason) }));
    ws.on('error', reject);
  });
}

/** Polls `task(id)` with `key` until its status is one of `statuses`. */
async function waitForTask(baseUrl: string, key: string, id: string, statuses: string[]): Promise<NonNullable<TaskBody['task']>> {
  let task: TaskBody['task'] = null;
  await until(`task ${id} in ${statuses.join('/')}`, async () => {
    task = (await gqlData<TaskBody>(baseUrl, TASK, { id }, bearer(key))).task;
    return task !== null && statuses.includes(task.status);
  });
  return task!;
}

async function taskIds(baseUrl: string, key: string): Promise<string[]> {
  const data = await gqlData<{ tasks: { edges: { node: { id: string } }[] } }>(baseUrl, TASKS, {}, bearer(key));
  return data.tasks.edges.map((e) => e.node.id);
}

describe('open mode (no key exists)', () => {
  let stack: Stack;
  let ref: Buffer;
  beforeAll(async () => {
    stack = await startStack();
    ref = await makeImage('png', 320, 240);
  });
  afterAll(async () => stack?.close());

  it('HTTP, SSE and graphql-ws work without a key, as before, and image URLs stay unsigned', async () => {
    const base = stack.app.url;
    // A header is ignored while the service is open, whatever it holds.
    const id = await generateTask(base, SMALL, ref, bearer('kx_not-a-key'));
    const frames = await watchWs(wsClient(base), id);
    expect(frames.at(-1)!.status).toBe('COMPLETED');
    const task = (await gqlData<TaskBody>(base, TASK, { id })).task!;
    expect(task.images[0]!.url).toBe(`/api/image/${id}?index=0`);
    expect(await taskIds(base, 'anything')).toContain(id);
    const streamed = await sse<{ taskProgress: Frame }>(base, WATCH, { taskId: id });
    expect(streamed.at(-1)!.data!.taskProgress.status).toBe('COMPLETED');
    expect(await connectionInit(base)).toBe('ack');
    const page = await (await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } })).text();
    expect(page).toMatch(/"subscriptionsProtocol":"WS"/);
  });
});

describe('keys mode', () => {
  let stack: Stack;
  let base: string;
  let ref: Buffer;
  const keys = {} as Record<'alice' | 'bob' | 'reader' | 'generator' | 'admin', string>;
  let openTask: string;
  let aliceTask: string;
  const ORIGIN = 'http://app.example';

  beforeAll(async () => {
    stack = await startStack({ config: { corsOrigins: [ORIGIN] } });
    base = stack.app.url;
    ref = await makeImage('png', 320, 240);
    // Made while the service is still open: no owner.
    openTask = await generateTask(base, SMALL, ref);
    const scopes: Record<keyof typeof keys, KeyScope[]> = {
      alice: ['generate', 'read'],
      bob: ['generate', 'read'],
      reader: ['read'],
      generator: ['generate'],
      admin: ['admin'],
    };
    for (const [name, s] of Object.entries(scopes)) keys[name as keyof typeof keys] = (await createApiKey(stack.app.db, { name, scopes: s })).key;
    // The Authenticator trusts "open" for up to 2 s.
    await until('the service requires keys', async () => (await gqlResponse(base, TASKS)).status === 401);
    aliceTask = await generateTask(base, SMALL, ref, bearer(keys.alice));
    await waitForTask(base, keys.alice, aliceTask, ['COMPLETED']);
  });
  afterAll(async () => stack?.close());

  describe('GraphQL over HTTP', () => {
    it('no key, a wrong key or an unusable header: 401 UNAUTHENTICATED with WWW-Authenticate: Bearer', async () => {
      for (const headers of [{}, bearer('kx_wrong'), { authorization: 'Basic dXNlcjpwYXNz' }, { 'x-api-key': 'kx_wrong' }]) {
        const res = await gqlResponse(base, TASKS, {}, headers);
        expect(res.status, JSON.stringify(headers)).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
        expect(res.body.errors).toHaveLength(1);
        expect(res.body.errors![0]!.extensions?.['code']).toBe('UNAUTHENTICATED');
        expect(res.body.data).toBeUndefined();
      }
      const missing = await gqlResponse(base, TASKS);
      expect(missing.body.errors![0]!.message).toMatch(/API key is required/);
      // GET queries too.
      const get = await fetch(`${base}/graphql?query=${encodeURIComponent(TASKS)}`, { headers: { accept: 'application/json', ...CSRF } });
      expect(get.status).toBe(401);
      // Yoga answers at `/graphql/` too: the same refusal there.
      const slash = await fetch(`${base}/graphql/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: TASKS }) });
      expect(slash.status).toBe(401);
    });

    it('X-API-Key works like Authorization: Bearer; GET queries carry the key the same way', async () => {
      const viaHeader = await gqlData<{ tasks: { edges: { node: { id: string } }[] } }>(base, TASKS, {}, { 'x-api-key': keys.alice });
      expect(viaHeader.tasks.edges.map((e) => e.node.id)).toEqual([aliceTask]);
      const get = await fetch(`${base}/graphql?query=${encodeURIComponent(TASKS)}`, { headers: { accept: 'application/json', ...CSRF, ...bearer(keys.alice) } });
      expect(get.status).toBe(200);
      expect(((await get.json()) as GraphQLBody<unknown>).errors).toBeUndefined();
    });

    it('a generate upload without a key is refused unread: 401, nothing stored', async () => {
      const before = await stack.app.db.selectFrom('uploads').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      const res = await postGenerate(base, SMALL, await makeImage('png', 330, 250));
      expect(res.status).toBe(401);
      expect(((await res.json()) as GraphQLBody<unknown>).errors![0]!.extensions?.['code']).toBe('UNAUTHENTICATED');
      const after = await stack.app.db.selectFrom('uploads').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      expect(Number(after.n)).toBe(Number(before.n));
    });

    it('a client still uploading when refused reads the 401 (the body is thrown away, not cut): 800 KB, a fresh connection each time', async () => {
      // A fresh undici agent per request: the refusal must reach a client mid-upload, not one whose socket is warm.
      for (let i = 0; i < 3; i++) {
        const dispatcher = new Agent();
        try {
          const form = new UndiciFormData();
          form.set('operations', JSON.stringify({ query: GENERATE, variables: { input: { ...SMALL, referenceImage: null } } }));
          form.set('map', JSON.stringify({ 0: ['variables.input.referenceImage'] }));
          form.set('0', new Blob([new Uint8Array(800 * 1024).fill(7)], { type: 'image/png' }), 'big.png');
          const res = await undiciFetch(`${base}/graphql`, { method: 'POST', body: form, headers: { ...CSRF, authorization: 'Bearer kx_wrong' }, dispatcher });
          expect(res.status).toBe(401);
          expect(((await res.json()) as GraphQLBody<unknown>).errors![0]!.extensions?.['code']).toBe('UNAUTHENTICATED');
        } finally {
          await dispatcher.close();
        }
      }
    });

    it('the GraphiQL page, its assets and CORS preflights stay public; a refusal carries CORS headers', async () => {
      const page = await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } });
      expect(page.status).toBe(200);
      const html = await page.text();
      // Subscriptions over SSE, which sends the Headers tab's key (GraphiQL's WS client does not); that tab says what to fill in.
      expect(html).toMatch(/"subscriptionsProtocol":"SSE"/);
      expect(html).toMatch(/"headers":"\{.*Authorization.*your API key/);
      const asset = /\/graphql\/graphiql\/[\w.-]+\.js/.exec(html)?.[0];
      expect(asset, 'the page links its script').toBeDefined();
      expect((await fetch(`${base}${asset!}`)).status).toBe(200);

      const preflight = await fetch(`${base}/graphql`, {
        method: 'OPTIONS',
        headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });
      expect(preflight.status).toBeLessThan(300);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(ORIGIN);
      expect(preflight.headers.get('access-control-allow-headers')).toMatch(/authorization/i);

      // A browser app must be able to read the 401 to ask for a key.
      const refused = await gqlResponse(base, TASKS, {}, { origin: ORIGIN });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    });
  });

  describe('scopes', () => {
    it('a key without `generate` gets FORBIDDEN from generate and cancelTask, and nothing is stored or cancelled', async () => {
      const res = await postGenerate(base, SMALL, await makeImage('png', 340, 260), { ...CSRF, ...bearer(keys.reader) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as GraphQLBody<unknown>;
      expect(body.errors![0]!.extensions?.['code']).toBe('FORBIDDEN');
      expect(body.errors![0]!.message).toMatch(/'generate' scope/);
      expect(await stack.app.db.selectFrom('uploads').select('sha256').where('width', '=', 340).execute()).toEqual([]);

      const cancel = await gqlResponse<unknown>(base, CANCEL, { id: aliceTask }, bearer(keys.reader));
      expect(cancel.body.errors![0]!.extensions?.['code']).toBe('FORBIDDEN');
      // The reader may still read (its own: none).
      expect(await taskIds(base, keys.reader)).toEqual([]);
    });

    it('a key without `read` gets FORBIDDEN from task, tasks and taskProgress (HTTP, SSE, graphql-ws)', async () => {
      for (const [query, variables] of [
        [TASK, { id: aliceTask }],
        [TASKS, {}],
      ] as const) {
        const res = await gqlResponse<unknown>(base, query, variables, bearer(keys.generator));
        expect(res.status).toBe(200);
        expect(res.body.errors![0]!.extensions?.['code']).toBe('FORBIDDEN');
        expect(res.body.errors![0]!.message).toMatch(/'read' scope/);
      }
      const streamed = await sse<unknown>(base, WATCH, { taskId: aliceTask }, bearer(keys.generator));
      expect(streamed.flatMap((r) => r.errors ?? []).map((e) => e.extensions?.['code'])).toEqual(['FORBIDDEN']);
      const client = wsClient(base, { connectionParams: bearer(keys.generator) });
      try {
        const results = await collect<unknown>(client, WATCH, { taskId: aliceTask });
        expect(results.flatMap((r) => r.errors ?? []).map((e) => e.extensions?.['code'])).toEqual(['FORBIDDEN']);
      } finally {
        await client.dispose();
      }
      // The generate-only key can still generate.
      expect((await generate(base, SMALL, ref, bearer(keys.generator))).__typename).toBe('GenerateSuccess');
    });
  });

  describe('ownership', () => {
    it("another key's task is exactly an unknown task: task null, not in tasks, taskProgress NOT_FOUND, cancelTask null", async () => {
      const unknown = 'task_does_not_exist';
      for (const id of [aliceTask, unknown]) {
        expect((await gqlData<TaskBody>(base, TASK, { id }, bearer(keys.bob))).task).toBeNull();
        expect((await gqlData<{ cancelTask: unknown }>(base, CANCEL, { id }, bearer(keys.bob))).cancelTask).toBeNull();
      }
      expect(await taskIds(base, keys.bob)).not.toContain(aliceTask);

      const bySse = async (taskId: string) => (await sse<unknown>(base, WATCH, { taskId }, bearer(keys.bob))).flatMap((r) => r.errors ?? []);
      const [theirs, none] = [await bySse(aliceTask), await bySse(unknown)];
      expect(theirs.map((e) => e.extensions?.['code'])).toEqual(['NOT_FOUND']);
      expect(theirs[0]!.message.replace(aliceTask, 'X')).toBe(none[0]!.message.replace(unknown, 'X'));

      const client = wsClient(base, { connectionParams: bearer(keys.bob) });
      try {
        const refusal = async (taskId: string) => (await collect<unknown>(client, WATCH, { taskId })).flatMap((r) => r.errors ?? []);
        const [wsTheirs, wsNone] = [await refusal(aliceTask), await refusal(unknown)];
        expect(wsTheirs[0]!.extensions?.['code']).toBe('NOT_FOUND');
        expect(wsTheirs[0]!.message.replace(aliceTask, 'X')).toBe(wsNone[0]!.message.replace(unknown, 'X'));
      } finally {
        await client.dispose();
      }

      // Alice's task was not touched: still hers, still completed.
      expect((await gqlData<TaskBody>(base, TASK, { id: aliceTask }, bearer(keys.alice))).task).toMatchObject({ id: aliceTask, status: 'COMPLETED' });

      // A running task of Alice's: Bob's cancel is a null that stops nothing; hers cancels it.
      const running = await generateTask(base, { ...SMALL, count: 4, steps: 100 }, ref, bearer(keys.alice));
      expect((await gqlData<{ cancelTask: unknown }>(base, CANCEL, { id: running }, bearer(keys.bob))).cancelTask).toBeNull();
      expect(['PENDING', 'PROCESSING']).toContain((await gqlData<TaskBody>(base, TASK, { id: running }, bearer(keys.alice))).task?.status);
      const mine = await gqlData<{ cancelTask: { status: string } | null }>(base, CANCEL, { id: running }, bearer(keys.alice));
      expect(mine.cancelTask?.status).toBe('CANCELLED');
    });

    it('a key lists only its own tasks; an admin key sees every task, those made while open included', async () => {
      const bobTask = await generateTask(base, SMALL, ref, bearer(keys.bob));
      const alices = await taskIds(base, keys.alice);
      expect(alices).toContain(aliceTask);
      expect(alices).not.toContain(bobTask);
      expect(alices).not.toContain(openTask);
      expect(await taskIds(base, keys.bob)).toEqual([bobTask]);
      const all = await taskIds(base, keys.admin);
      for (const id of [openTask, aliceTask, bobTask]) expect(all).toContain(id);
      expect((await gqlData<TaskBody>(base, TASK, { id: openTask }, bearer(keys.admin))).task?.id).toBe(openTask);
      expect((await gqlData<TaskBody>(base, TASK, { id: openTask }, bearer(keys.alice))).task).toBeNull();
      // The owner and an admin may cancel; the task ends CANCELLED or already COMPLETED.
      const cancelled = await gqlData<{ cancelTask: { id: string; status: string } | null }>(base, CANCEL, { id: bobTask }, bearer(keys.admin));
      expect(cancelled.cancelTask?.id).toBe(bobTask);
    });
  });

  describe('graphql-ws', () => {
    it('no key, a wrong key, a malformed payload: closed with 4401 at connection_init', async () => {
      for (const payload of [undefined, {}, { authorization: 'Bearer kx_wrong' }, { authorization: 'kx_wrong' }, { apiKey: 'kx_wrong' }, { authorization: 42 }]) {
        const outcome = await connectionInit(base, payload);
        expect(outcome, JSON.stringify(payload)).toMatchObject({ code: 4401 });
      }
      expect(await connectionInit(base, {})).toMatchObject({ reason: expect.stringMatching(/connection_init/) as unknown });
    });

    it('the key in connection_init ({"authorization": "Bearer <key>"} or {"apiKey": "<key>"}) holds for every operation on the socket', async () => {
      expect(await connectionInit(base, bearer(keys.alice))).toBe('ack');
      expect(await connectionInit(base, { apiKey: keys.alice })).toBe('ack');
      const client = wsClient(base, { connectionParams: bearer(keys.alice) });
      try {
        const id = await generateTask(base, { ...SMALL, count: 2 }, ref, bearer(keys.alice));
        const frames = await watchWs(client, id);
        expect(frames.at(-1)!.status).toBe('COMPLETED');
        // The image URLs in progress frames are signed too, and work without a header.
        const urls = frames.flatMap((f) => (f.image ? [f.image.url] : []));
        expect(urls).toHaveLength(2);
        for (const url of urls) {
          expect(url).toMatch(/&exp=\d+&sig=[\w-]{43}$/);
          expect((await fetch(`${base}${url}`)).status).toBe(200);
        }
        const listed = await collect<{ tasks: { edges: { node: { id: string } }[] } }>(client, TASKS, {});
        expect(listed[0]!.data!.tasks.edges.map((e) => e.node.id)).toContain(aliceTask);
      } finally {
        await client.dispose();
      }
    });
  });

  it('a revoked key is refused on HTTP, SSE and graphql-ws once the lookup cache expires', async () => {
    const { key, row } = await createApiKey(stack.app.db, { name: 'soon revoked' });
    // Used first, so the Authenticator holds it in its cache.
    expect((await gqlResponse(base, TASKS, {}, bearer(key))).status).toBe(200);
    await revokeApiKey(stack.app.db, row.id, new Date().toISOString());
    await until('the revocation is seen', async () => (await gqlResponse(base, TASKS, {}, bearer(key))).status === 401, 10_000);
    const res = await gqlResponse(base, TASKS, {}, bearer(key));
    expect(res.body.errors![0]).toMatchObject({ message: expect.stringMatching(/revoked/) as unknown, extensions: { code: 'UNAUTHENTICATED' } });
    const streamed = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...bearer(key) },
      body: JSON.stringify({ query: WATCH, variables: { taskId: aliceTask } }),
    });
    expect(streamed.status).toBe(401);
    expect(await connectionInit(base, bearer(key))).toMatchObject({ code: 4401, reason: expect.stringMatching(/revoked/) as unknown });
  });

  it('SSE without a key or with a wrong one: 401 UNAUTHENTICATED before any stream', async () => {
    for (const headers of [{}, bearer('kx_wrong')]) {
      const res = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
        body: JSON.stringify({ query: WATCH, variables: { taskId: aliceTask } }),
      });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
      expect(((await res.json()) as GraphQLBody<unknown>).errors![0]!.extensions?.['code']).toBe('UNAUTHENTICATED');
    }
    const streamed = await sse<{ taskProgress: Frame }>(base, WATCH, { taskId: aliceTask }, bearer(keys.alice));
    expect(streamed.at(-1)!.data!.taskProgress.status).toBe('COMPLETED');
  });

  it('Image.url is signed for a key and fetches without a header; unsigned it needs the key', async () => {
    const task = await waitForTask(base, keys.alice, aliceTask, ['COMPLETED']);
    const url = task.images[0]!.url;
    expect(url).toMatch(new RegExp(`^/api/image/${aliceTask}\\?index=0&exp=\\d+&sig=[\\w-]{43}$`));
    const image = await fetch(`${base}${url}`);
    expect(image.status).toBe(200);
    expect(image.headers.get('content-type')).toMatch(/^image\//);
    expect((await fetch(`${base}/api/image/${aliceTask}?index=0`)).status).toBe(401);
  });
});

describe('quotas', () => {
  let stack: Stack;
  let base: string;
  // Slow steps: a task of 20 steps stays in the queue or running for seconds.
  beforeAll(async () => {
    stack = await startStack({ sim: { stepMs: 200 } });
    base = stack.app.url;
  });
  afterAll(async () => stack?.close());

  /** Rows of `uploads` and `tasks` now. */
  async function stored(): Promise<{ uploads: number; tasks: number }> {
    const count = async (table: 'uploads' | 'tasks') =>
      Number((await stack.app.db.selectFrom(table).select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    return { uploads: await count('uploads'), tasks: await count('tasks') };
  }

  it('generate over a limit returns QuotaExceededError with its limit and retryAfterSeconds, and stores nothing', async () => {
    const limited = (await createApiKey(stack.app.db, { name: 'one at a time', maxConcurrent: 1 })).key;
    const rated = (await createApiKey(stack.app.db, { name: 'one a minute', ratePerMinute: 1 })).key;
    const daily = (await createApiKey(stack.app.db, { name: 'one image a day', imagesPerDay: 1 })).key;
    const other = (await createApiKey(stack.app.db, { name: 'unlimited' })).key;
    await until('the service requires keys', async () => (await gqlResponse(base, TASKS)).status === 401);

    const first = await generateTask(base, { ...SMALL, steps: 20 }, await makeImage('png', 320, 240), bearer(limited));
    const before = await stored();
    // A new image each time: a refused request must not leave its upload behind.
    const overConcurrent = await generate(base, SMALL, await makeImage('png', 352, 240), bearer(limited));
    expect(overConcurrent).toMatchObject({ __typename: 'QuotaExceededError', limit: 'MAX_CONCURRENT' });
    if (overConcurrent.__typename !== 'QuotaExceededError') throw new Error('unreachable');
    expect(overConcurrent.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(overConcurrent.message).toMatch(/concurrent/i);
    expect(await stored()).toEqual(before);

    // Another key is not held back by this one's limit.
    const others = await generateTask(base, SMALL, await makeImage('png', 320, 240), bearer(other));

    expect((await generate(base, SMALL, await makeImage('png', 320, 240), bearer(rated))).__typename).toBe('GenerateSuccess');
    const afterRate = await stored();
    const overRate = await generate(base, SMALL, await makeImage('png', 368, 240), bearer(rated));
    expect(overRate).toMatchObject({ __typename: 'QuotaExceededError', limit: 'RATE' });
    expect(await stored()).toEqual(afterRate);

    // Two images for a key with one a day: GraphQL knows the count before the upload is read, so
    // the pre-check refuses it and nothing is stored.
    const afterDaily = await stored();
    const overDaily = await generate(base, { ...SMALL, count: 2 }, await makeImage('png', 384, 240), bearer(daily));
    expect(overDaily).toMatchObject({ __typename: 'QuotaExceededError', limit: 'IMAGES_PER_DAY' });
    expect(await stored()).toEqual(afterDaily);

    // Once the first task ends, the key may generate again.
    await gqlData(base, CANCEL, { id: first }, bearer(limited));
    await gqlData(base, CANCEL, { id: others }, bearer(other));
    await waitForTask(base, limited, first, ['CANCELLED', 'COMPLETED']);
    const again = await generate(base, SMALL, await makeImage('png', 352, 240), bearer(limited));
    expect(again.__typename).toBe('GenerateSuccess');
  });
});
