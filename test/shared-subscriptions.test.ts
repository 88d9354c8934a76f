/**
 * Shared subscriptions (issue 15): subscribers of the same operation and caller share each frame's
 * execution and payload, on graphql-ws and SSE, while every guarantee stays per subscriber: its own
 * snapshot first, `seq` without gaps, its own completion and errors, and no key's data for another.
 */
import { parse, type ExecutionArgs } from 'graphql';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { OPEN_CALLER, type Caller } from '../src/auth/caller.js';
import { createApiKey } from '../src/auth/create-api-key.js';
import type { KeyScope } from '../src/db/types.js';
import { sharedGroupKey } from '../src/graphql/shared-group-key.js';
import { bearer, collect, expectCompleteStream, generateTask, gqlResponse, sse, WATCH, watchWs, wsClient, type Frame, type GraphQLBody } from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, type Stack } from './helpers/stack.js';

const TASK = { description: 'make it night', count: 2, size: '256x256', steps: 12 } as const;

/** Raw `next` messages of one subscription on a bare socket, until its `complete`. */
function rawWatch(baseUrl: string, taskId: string, params: Record<string, unknown> = {}): Promise<string[]> {
  const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
  const messages: string[] = [];
  return new Promise((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: params })));
    ws.on('message', (data) => {
      const text = String(data);
      const msg = JSON.parse(text) as { type: string };
      if (msg.type === 'connection_ack') ws.send(JSON.stringify({ id: 'only', type: 'subscribe', payload: { query: WATCH, variables: { taskId } } }));
      else if (msg.type === 'next') messages.push(text);
      else if (msg.type === 'complete') {
        ws.close(1000);
        resolve(messages);
      } else if (msg.type === 'error') reject(new Error(text));
    });
    ws.on('error', reject);
  });
}

const framesOf = (results: GraphQLBody<{ taskProgress: Frame }>[]) => results.map((r) => r.data!.taskProgress);

describe('open mode: many subscribers of one task', () => {
  let stack: Stack;
  let ref: Buffer;
  beforeAll(async () => {
    stack = await startStack({ sim: { stepMs: 25 } });
    ref = await makeImage('png', 320, 240);
  });
  afterAll(async () => stack?.close());

  it('graphql-ws and SSE subscribers get the same frames; a message differs from another socket’s only by its id', async () => {
    const base = stack.app.url;
    const id = await generateTask(base, TASK, ref);
    const client = wsClient(base);
    try {
      const [raw1, raw2, ws1, ws2, sse1, sse2] = await Promise.all([
        rawWatch(base, id),
        rawWatch(base, id),
        watchWs(client, id),
        watchWs(client, id),
        sse<{ taskProgress: Frame }>(base, WATCH, { taskId: id }),
        sse<{ taskProgress: Frame }>(base, WATCH, { taskId: id }),
      ]);
      for (const frames of [ws1, ws2, framesOf(sse1), framesOf(sse2)]) expectCompleteStream(frames, id, TASK.count);
      // Frames after the first (each subscriber's own snapshot) are the shared ones: equal everywhere.
      const tail = (frames: Frame[]) => frames.filter((f) => f.seq > Math.max(ws1[0]!.seq, ws2[0]!.seq, framesOf(sse1)[0]!.seq, framesOf(sse2)[0]!.seq));
      expect(tail(ws2)).toEqual(tail(ws1));
      expect(tail(framesOf(sse1))).toEqual(tail(ws1));
      expect(tail(framesOf(sse2))).toEqual(tail(ws1));
      const seqOf = (m: string) => (JSON.parse(m) as { payload: { data: { taskProgress: Frame } } }).payload.data.taskProgress.seq;
      const bySeq = new Map(raw2.map((m) => [seqOf(m), m]));
      const common = raw1.slice(1).filter((m) => bySeq.has(seqOf(m)));
      expect(common.length).toBeGreaterThan(3);
      for (const m of common) {
        expect(m.startsWith('{"id":"only","type":"next","payload":{"data":{"taskProgress":')).toBe(true);
        expect(bySeq.get(seqOf(m))).toBe(m);
      }
    } finally {
      await client.dispose();
    }
  });

  it('writes the shared `next` messages to the socket’s stream itself, each one whole frame (ws-next-frames.ts), not through ws’ send', async () => {
    const id = await generateTask(stack.app.url, TASK, ref);
    const send = vi.spyOn(WebSocket.prototype, 'send');
    try {
      const messages = await rawWatch(stack.app.url, id);
      expect(messages.length).toBeGreaterThan(3);
      const sent = send.mock.calls.map(([data]) => String(data));
      // The spy sees the server's own sends (its ack and the final complete) ...
      expect(sent.some((m) => m.includes('"type":"connection_ack"'))).toBe(true);
      expect(sent.some((m) => m.includes('"type":"complete"'))).toBe(true);
      // ... and none of the frames.
      expect(sent.filter((m) => m.includes('"type":"next"'))).toEqual([]);
    } finally {
      send.mockRestore();
    }
  });

  it('a late subscriber gets its own snapshot first, then the live frames without gaps', async () => {
    const base = stack.app.url;
    const id = await generateTask(base, TASK, ref);
    const client = wsClient(base);
    try {
      const early = watchWs(client, id);
      // Join once the task is past its first frames.
      let late: Promise<Frame[]> | undefined;
      await until('the task is processing', async () => {
        const r = await gqlResponse<{ task: { status: string; progress: number } }>(base, 'query($id: ID!) { task(id: $id) { status progress } }', { id });
        return r.body.data?.task?.status === 'PROCESSING' && r.body.data.task.progress > 0;
      });
      late = watchWs(client, id);
      const [e, l] = await Promise.all([early, late]);
      expectCompleteStream(e, id, TASK.count);
      expect(l[0]!.seq).toBeGreaterThan(e[0]!.seq);
      expect(l[0]!.status).toBe('PROCESSING');
      for (let i = 1; i < l.length; i++) expect(l[i]!.seq).toBe(l[i - 1]!.seq + 1);
      expect(l.at(-1)).toEqual(e.at(-1));
    } finally {
      await client.dispose();
    }
  });

  it('a client completing its subscription ends only its own: the same subscription beside it on the socket runs to the end', async () => {
    const base = stack.app.url;
    const id = await generateTask(base, TASK, ref);
    const client = wsClient(base);
    try {
      const kept = watchWs(client, id);
      let seen = 0;
      const stopped: Frame[] = [];
      for await (const r of client.iterate<{ taskProgress: Frame }>({ query: WATCH, variables: { taskId: id } })) {
        stopped.push(r.data!.taskProgress);
        if (++seen === 3) break; // completes this subscription only
      }
      expect(stopped).toHaveLength(3);
      expectCompleteStream(await kept, id, TASK.count);
    } finally {
      await client.dispose();
    }
  });
});

describe('keys mode: the group includes the caller', () => {
  let stack: Stack;
  let base: string;
  let ref: Buffer;
  const keys = {} as Record<'alice' | 'bob' | 'admin' | 'generator', string>;
  beforeAll(async () => {
    stack = await startStack({ sim: { stepMs: 25 } });
    base = stack.app.url;
    ref = await makeImage('png', 320, 240);
    keys.alice = (await createApiKey(stack.app.db, { name: 'alice', scopes: ['generate', 'read'] })).key;
    keys.bob = (await createApiKey(stack.app.db, { name: 'bob', scopes: ['generate', 'read'] })).key;
    keys.admin = (await createApiKey(stack.app.db, { name: 'admin', scopes: ['admin'] })).key;
    keys.generator = (await createApiKey(stack.app.db, { name: 'generator', scopes: ['generate'] })).key;
    await until('the service requires keys', async () => (await gqlResponse(base, '{ __typename }')).status === 401);
  });
  afterAll(async () => stack?.close());

  it('the same document from the owner, an admin, another key and a key without read: frames, frames, NOT_FOUND, FORBIDDEN', async () => {
    const id = await generateTask(base, TASK, ref, bearer(keys.alice));
    const clients = Object.fromEntries(Object.entries(keys).map(([name, key]) => [name, wsClient(base, { connectionParams: { authorization: `Bearer ${key}` } })]));
    try {
      const [alice1, alice2, admin, aliceSse, bob, bobSse, generator] = await Promise.all([
        watchWs(clients['alice']!, id),
        watchWs(clients['alice']!, id),
        watchWs(clients['admin']!, id),
        sse<{ taskProgress: Frame }>(base, WATCH, { taskId: id }, bearer(keys.alice)),
        collect<{ taskProgress: Frame }>(clients['bob']!, WATCH, { taskId: id }),
        sse<{ taskProgress: Frame }>(base, WATCH, { taskId: id }, bearer(keys.bob)),
        collect<{ taskProgress: Frame }>(clients['generator']!, WATCH, { taskId: id }),
      ]);
      for (const frames of [alice1, alice2, admin, framesOf(aliceSse)]) expectCompleteStream(frames, id, TASK.count);
      for (const frames of [alice1, admin]) for (const f of frames) if (f.image) expect(f.image.url).toMatch(/[?&]sig=/);
      expect(bob.map((r) => r.errors?.[0]?.extensions?.['code'])).toEqual(['NOT_FOUND']);
      expect(bobSse.map((r) => r.errors?.[0]?.extensions?.['code'])).toEqual(['NOT_FOUND']);
      expect(generator.map((r) => r.errors?.[0]?.extensions?.['code'])).toEqual(['FORBIDDEN']);
    } finally {
      await Promise.all(Object.values(clients).map((c) => c.dispose()));
    }
  });
});

describe('the group key', () => {
  const args = (caller: Caller | undefined, variables: Record<string, unknown> = { taskId: 't1' }): ExecutionArgs => ({
    schema: {} as ExecutionArgs['schema'], // not read by the key
    document: parse(WATCH),
    variableValues: variables,
    contextValue: { caller },
  });
  const key = (id: string | null, seesAll = false, scopes: KeyScope[] = ['read']): Caller => ({ ...OPEN_CALLER, keyId: id, seesAll, scopes: new Set(scopes) });

  it('is the same for the same operation and caller, and differs by key, admin, scopes, signing and variables; none without a caller', () => {
    expect(sharedGroupKey(args(key('k1')))).toBe(sharedGroupKey(args(key('k1'))));
    const keys = [
      sharedGroupKey(args(key('k1'))),
      sharedGroupKey(args(key('k2'))),
      sharedGroupKey(args(key('k1', true))),
      sharedGroupKey(args(key('k1', false, ['read', 'generate']))),
      sharedGroupKey(args(key(null, true))), // open: unsigned URLs
      sharedGroupKey(args(key('k1'), { taskId: 't2' })),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    expect(sharedGroupKey(args(undefined))).toBeUndefined();
  });
});
