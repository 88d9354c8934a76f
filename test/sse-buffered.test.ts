/**
 * SSE subscriptions whose small body is read ahead (buffered-request.ts) are answered as Yoga
 * answers any: CORS headers for an allowed origin, a bad document as Yoga's error, the stream of a
 * task; a client that leaves mid-body gets nothing and the server goes on.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTask } from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { startStack, type Stack } from './helpers/stack.js';

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

  it('a client that leaves mid-body is let go; the next request is served', async () => {
    const { port } = new URL(stack.app.url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: 100\r\n\r\n{"query":');
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    const res = await post({ query: '{ __typename }' });
    expect(res.status).toBe(200);
  });
});
