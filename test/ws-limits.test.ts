/**
 * Limits per connection (issue 9, item 12): MAX_SUBSCRIPTIONS_PER_SOCKET operations per graphql-ws
 * socket, MAX_LIVE_CONNECTIONS sockets plus SSE streams in total, and an oversized frame is one
 * warn line in the log, not a stack trace on the console.
 */
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type { Logger } from '../src/log.js';
import { wsClient, type GraphQLBody } from './helpers/graphql.js';
import { postGenerate, startStack, until, type Stack } from './helpers/stack.js';
import { tryUpgrade } from './helpers/upgrade.js';

const WATCH = /* GraphQL */ `subscription($taskId: ID!) { taskProgress(taskId: $taskId) { seq status } }`;

/** A subscription that stays open: resolves `first` with its first result, `ended` with how it ended. */
function subscribe(client: Client, taskId: string) {
  let firstResult!: (r: GraphQLBody<unknown>) => void;
  const first = new Promise<GraphQLBody<unknown>>((resolve) => (firstResult = resolve));
  let unsubscribe!: () => void;
  const ended = new Promise<{ error?: unknown }>((resolve) => {
    unsubscribe = client.subscribe(
      { query: WATCH, variables: { taskId } },
      { next: (r) => firstResult(r as GraphQLBody<unknown>), error: (error) => resolve({ error }), complete: () => resolve({}) },
    );
  });
  return { first, ended, unsubscribe };
}


/** A task that stays RUNNING for the whole test (a minute per sampler step). */
async function longTask(stack: Stack): Promise<string> {
  const res = await postGenerate(stack.app.url, { description: 'stays running', steps: '1', size: '256x256' });
  expect(res.status).toBe(200);
  return ((await res.json()) as { task_id: string }).task_id;
}

describe('MAX_SUBSCRIPTIONS_PER_SOCKET', () => {
  let stack: Stack;
  let taskId: string;
  beforeAll(async () => {
    stack = await startStack({ sim: { stepMs: 60_000 }, config: { maxSubscriptionsPerSocket: 3 } });
    taskId = await longTask(stack);
  });
  afterAll(async () => {
    await stack.close();
  });

  it('the operation over the limit gets an error naming it; the socket and its subscriptions stay; a freed slot is usable', async () => {
    const client = wsClient(stack.app.url, { lazy: false });
    let closed = false;
    client.on('closed', () => (closed = true));
    const subs = [0, 1, 2].map(() => subscribe(client, taskId));
    for (const s of subs) expect((await s.first).errors).toBeUndefined();

    const extra = subscribe(client, taskId);
    const { error } = await extra.ended;
    expect(error).toEqual([
      expect.objectContaining({ message: 'Too many operations on this socket (at most 3, MAX_SUBSCRIPTIONS_PER_SOCKET); complete one first' }),
    ]);

    // Another socket has its own allowance.
    const other = wsClient(stack.app.url);
    const onOther = subscribe(other, taskId);
    expect((await onOther.first).errors).toBeUndefined();
    onOther.unsubscribe();

    subs[0]!.unsubscribe();
    await subs[0]!.ended;
    // The server forgets the completed one when it handles the client's `complete`; retry until it has.
    await until('a freed slot', async () => {
      const next = subscribe(client, taskId);
      const settled = await Promise.race([next.first.then(() => 'open' as const), next.ended.then(() => 'refused' as const)]);
      if (settled === 'open') next.unsubscribe();
      return settled === 'open';
    });
    expect(closed).toBe(false);
    for (const s of subs) s.unsubscribe();
    await client.dispose();
    await other.dispose();
  });
});

describe('MAX_LIVE_CONNECTIONS and oversized frames', () => {
  let stack: Stack;
  let taskId: string;
  const warnings: string[] = [];
  const log: Logger = {
    debug() {},
    info() {},
    // Only the WebSocket side's lines: the slow simulator may make the pool warn too.
    warn: (message, fields) => message.startsWith('graphql-ws') && warnings.push(`${message} ${JSON.stringify(fields ?? {})}`),
    error: (message, fields) => message.startsWith('graphql-ws') && warnings.push(`ERROR ${message} ${JSON.stringify(fields ?? {})}`),
  };
  beforeAll(async () => {
    stack = await startStack({ sim: { stepMs: 60_000 }, config: { maxLiveConnections: 2 }, app: { log } });
    taskId = await longTask(stack);
  });
  afterAll(async () => {
    await stack.close();
  });

  it('WebSockets and SSE streams share the cap: the next one gets 503 (before the upgrade, or as the SSE answer), until one closes', async () => {
    const ws = await tryUpgrade(stack.app.url);
    expect(ws).toHaveProperty('socket');
    const abort = new AbortController();
    const stream = await fetch(`${stack.app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: WATCH, variables: { taskId } }),
      signal: abort.signal,
    });
    expect(stream.status).toBe(200);

    const refusedWs = await tryUpgrade(stack.app.url);
    expect(refusedWs).toMatchObject({ status: 503 });
    const message = 'Too many live connections (at most 2, MAX_LIVE_CONNECTIONS); try again later';
    expect(JSON.parse((refusedWs as { body: string }).body)).toEqual({ errors: [{ message, extensions: { code: 'TOO_MANY_CONNECTIONS' } }] });
    const refusedSse = await fetch(`${stack.app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: WATCH, variables: { taskId } }),
    });
    expect(refusedSse.status).toBe(503);
    expect(((await refusedSse.json()) as GraphQLBody<unknown>).errors?.[0]?.message).toBe(message);
    // Plain requests are not live connections.
    expect((await fetch(`${stack.app.url}/health`)).status).toBe(200);

    abort.abort();
    await until('the closed stream to free its slot', async () => {
      const next = await tryUpgrade(stack.app.url);
      if ('socket' in next) next.socket.close();
      return 'socket' in next;
    });
    (ws as { socket: WebSocket }).socket.close();
  });

  it('a WebSocket message over 64 KiB closes that socket with 1009 and logs one short warn line, nothing on the console', async () => {
    const consoleError = vi.spyOn(console, 'error');
    try {
      // The previous test's sockets free their slots as they finish closing.
      let socket!: WebSocket;
      await until('a free slot', async () => {
        const opened = await tryUpgrade(stack.app.url);
        if ('socket' in opened) socket = opened.socket;
        return 'socket' in opened;
      });
      const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
      warnings.length = 0;
      socket.send('x'.repeat(65 * 1024));
      expect(await closed).toBe(1009);
      await until('the warn line', () => warnings.length > 0);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^graphql-ws: socket closed on error .*Max payload size exceeded/);
      expect(warnings[0]).not.toMatch(/\n\s+at /); // no stack
      expect(consoleError).not.toHaveBeenCalled();
    } finally {
      consoleError.mockRestore();
    }
  });
});
