/**
 * Shareable graphql-ws subscriptions handled beside graphql-ws (ws-shared-subscriptions.ts): one
 * envelope (parse, validate, context) per group, each subscriber a record in graphql-ws's own table
 * of the connection's operations, so its protocol rules hold: a duplicate id closes the socket with
 * 4409, a client's `complete` ends only that operation (no `complete` sent back), a closed socket
 * releases its watches, the group is rebuilt once its last member left.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { attachGraphQLWs, type GraphQLWsServer } from '../src/graphql/ws.js';
import { createGraphQLServer } from '../src/graphql/yoga.js';
import { generateTask } from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { startStack, type Stack } from './helpers/stack.js';

const WATCH = `subscription W($taskId: ID!) { taskProgress(taskId: $taskId) { taskId seq status } }`;

interface Message {
  id?: string;
  type: string;
  payload?: { data?: { taskProgress?: { seq: number } }; errors?: unknown };
}

/** A raw graphql-transport-ws client: every message it received, in order. */
async function connect(url: string): Promise<{ socket: WebSocket; messages: Message[]; next: (test: (m: Message) => boolean) => Promise<Message> }> {
  const socket = new WebSocket(url, 'graphql-transport-ws');
  const messages: Message[] = [];
  const waiters = new Set<{ test: (m: Message) => boolean; resolve: (m: Message) => void }>();
  socket.on('message', (data: Buffer) => {
    const m = JSON.parse(String(data)) as Message;
    messages.push(m);
    for (const w of waiters) if (w.test(m)) (waiters.delete(w), w.resolve(m));
  });
  const next = (test: (m: Message) => boolean) => {
    const seen = messages.find(test);
    return seen ? Promise.resolve(seen) : new Promise<Message>((resolve) => waiters.add({ test, resolve }));
  };
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send(JSON.stringify({ type: 'connection_init', payload: {} }));
  await next((m) => m.type === 'connection_ack');
  return { socket, messages, next };
}

const subscribe = (socket: WebSocket, id: string, taskId: string) =>
  socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query: WATCH, variables: { taskId } } }));

describe('shared graphql-ws subscriptions', () => {
  let stack: Stack;
  let server: Server;
  let ws: GraphQLWsServer;
  let url: string;
  let envelopes = 0;
  let taskId: string;
  beforeAll(async () => {
    stack = await startStack({ sim: { stepMs: 25 } });
    const { service, auth, signer } = stack.app;
    const yoga = createGraphQLServer({ service, auth, signer, maxFileSize: 1 << 20, publicUrl: undefined, corsOrigins: [] });
    const getEnveloped = yoga.getEnveloped;
    // Counted: one call per envelope made (readonly in Yoga's type; Yoga's adapter forwards the assignment).
    (yoga as { getEnveloped: typeof getEnveloped }).getEnveloped = Object.assign((...args: Parameters<typeof getEnveloped>) => (envelopes++, getEnveloped(...args)), getEnveloped);
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ws = attachGraphQLWs(server, { yoga, auth });
    url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/graphql`;
    stack.sims[0]!.pause(); // the task stays live while the tests subscribe
    taskId = await generateTask(stack.app.url, { description: 'shared ops', count: 1, size: '256x256', steps: 4 }, await makeImage('png', 320, 240));
  });
  afterAll(async () => {
    stack?.sims[0]?.resume();
    await ws?.dispose();
    await new Promise((resolve) => server?.close(resolve));
    await stack?.close();
  });

  it('one envelope for a group; a member completing ends only its own; the last one leaving ends the group', async () => {
    const a = await connect(url);
    const b = await connect(url);
    const before = envelopes;
    for (const [c, id] of [[a, '1'], [a, '2'], [b, '1']] as const) subscribe(c.socket, id, taskId);
    for (const [c, id] of [[a, '1'], [a, '2'], [b, '1']] as const) await c.next((m) => m.id === id && m.type === 'next');
    expect(envelopes - before).toBe(1);
    expect(stack.app.service.watchers()).toBe(3);

    a.socket.send(JSON.stringify({ id: '1', type: 'complete' }));
    await waitFor(() => stack.app.service.watchers() === 2);
    b.socket.close();
    await waitFor(() => stack.app.service.watchers() === 1);
    a.socket.send(JSON.stringify({ id: '2', type: 'complete' }));
    await waitFor(() => stack.app.service.watchers() === 0);
    expect(a.messages.filter((m) => m.type === 'complete')).toEqual([]); // a client's complete is not echoed
    expect(a.socket.readyState).toBe(WebSocket.OPEN);

    subscribe(a.socket, '3', taskId); // the group is gone: a new one
    await a.next((m) => m.id === '3' && m.type === 'next');
    expect(envelopes - before).toBe(2);
    a.socket.close();
  });

  it('a duplicate operation id closes the socket with 4409, as graphql-ws does', async () => {
    const c = await connect(url);
    const closed = new Promise<[number, string]>((resolve) => c.socket.once('close', (code, reason) => resolve([code, String(reason)])));
    subscribe(c.socket, 'same', taskId);
    subscribe(c.socket, 'same', taskId);
    expect(await closed).toEqual([4409, 'Subscriber for same already exists']);
    await waitFor(() => stack.app.service.watchers() === 0);
  });

  it('an unknown task: `next` with NOT_FOUND, then `complete`; a bad document: `error`; the socket stays', async () => {
    const c = await connect(url);
    subscribe(c.socket, 'x', 'no-such-task');
    const next = await c.next((m) => m.id === 'x' && m.type === 'next');
    expect(JSON.stringify(next.payload?.errors)).toContain('NOT_FOUND');
    await c.next((m) => m.id === 'x' && m.type === 'complete');
    c.socket.send(JSON.stringify({ id: 'y', type: 'subscribe', payload: { query: 'subscription { nope }' } }));
    const error = await c.next((m) => m.id === 'y');
    expect(error.type).toBe('error');
    expect(c.socket.readyState).toBe(WebSocket.OPEN);
    c.socket.close();
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}
