/**
 * SSE subscriptions whose small body is read ahead (buffered-request.ts) are answered as Yoga
 * answers any: CORS headers for an allowed origin, a bad document as Yoga's error, the stream of a
 * task; a client that leaves mid-body gets nothing, holds nothing, and the server goes on.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferedRequest } from '../src/graphql/buffered-request.js';
import { generateTask } from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, type Stack } from './helpers/stack.js';

/** Opens a connection and sends an SSE subscription's headers and the first 9 of its 100 body bytes. */
async function sendPartOfBody(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write('POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: 100\r\n\r\n{"query":');
  return socket;
}

const WATCH = 'subscription W($taskId: ID!) { taskProgress(taskId: $taskId) { seq status } }';
const ORIGIN = 'https://app.example';

describe('SSE with a body read ahead', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ config: { corsOrigins: '*' } });
  });
  afterAll(async () => stack?.close());

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${stack.app.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
      body: JSON.stringify(body),
    });

  it('streams a task to the end with the CORS header of an allowed origin', async () => {
    const id = await generateTask(stack.app.url, { description: 'sse', count: 1, size: '256x256', steps: 2 }, await makeImage('png', 320, 240));
    const res = await post({ query: WATCH, variables: { taskId: id } }, { origin: ORIGIN });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const text = await res.text();
    expect(text).toContain('"status":"COMPLETED"');
    expect(text.trimEnd().endsWith('event: complete\ndata:')).toBe(true);
  });

  it('a document that does not validate gets the same answer as without SSE streaming', async () => {
    const res = await post({ query: 'subscription { nope }' });
    const body = await res.text();
    expect(body).toContain('Cannot query field');
  });

  /** Live subscribers by transport, as /metrics counts them (SSE streams held against MAX_LIVE_CONNECTIONS). */
  const subscribers = async (): Promise<Record<string, number>> => {
    const gauge = await stack.app.metrics.registry.getSingleMetric('kontext_subscribers')!.get();
    return Object.fromEntries(gauge.values.map((v) => [String(v.labels.transport), v.value]));
  };
  const connections = () => new Promise<number>((resolve, reject) => stack.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

  it('clients that leave while their body is being read are let go: no slot, socket or listener stays, the next request is served', async () => {
    const { port } = new URL(stack.app.url);
    const before = await connections();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      // More than the default 10 listeners of an emitter: a listener left on something shared would warn.
      for (let i = 0; i < 12; i++) {
        const socket = await sendPartOfBody(Number(port));
        // Held as an SSE stream: the request is in buffered-request.ts, waiting for the rest of its body.
        await until('the stream held', async () => (await subscribers()).sse === 1);
        socket.destroy();
        await until('the stream let go', async () => (await subscribers()).sse === 0);
      }
      await until('the server-side sockets closed', async () => (await connections()) <= before);
      expect(await subscribers()).toEqual({ 'graphql-ws': 0, sse: 0 });
      expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
    const res = await post({ query: '{ __typename }' });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('__typename');
  });
});

describe('bufferedRequest', () => {
  it('resolves null, not a Request of the part that came, when the client leaves mid-body; a whole body makes a Request', async () => {
    const results: (Request | null)[] = [];
    const server = createServer((req, res) => {
      void bufferedRequest(req, { Request, Headers }).then(async (request) => {
        results.push(request);
        res.end(request ? await request.text() : '');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    try {
      const socket = await sendPartOfBody(port);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(results).toEqual([]); // still reading
      socket.destroy();
      await until('the read ended', () => results.length === 1, 5000);
      expect(results[0]).toBeNull();

      const body = JSON.stringify({ query: '{ __typename }' });
      const res = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(await res.text()).toBe(body);
      expect(results[1]?.url).toBe(`http://127.0.0.1:${port}/graphql`);
      expect(results[1]?.headers.get('content-type')).toBe('application/json');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    }
  });
});
