/**
 * An SSE sink's writes go out as they are made: Node's `res.write()` would otherwise cork the
 * socket until the next tick, and every stream written in one frame's loop would leave after it.
 */
import { createServer, get, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SSE_HEADERS, SseSink } from '../src/graphql/direct-sse.js';
import type { GraphQLServer } from '../src/graphql/graphql-server.js';
import { markShared } from '../src/graphql/shared-payload.js';

describe('SseSink', () => {
  let responses: (res: ServerResponse) => void;
  const server = createServer((_req, res) => responses(res));
  let url = '';
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('flushes the head and each shared event to the socket at once, leaving it uncorked', async () => {
    const corked: number[] = [];
    responses = (res) => {
      // Only shared results are written here: the sink never needs an envelope of its own.
      const sink = new SseSink(res, {} as GraphQLServer);
      sink.open(new Response(null, { status: 200, headers: SSE_HEADERS }));
      corked.push(res.socket!.writableCorked);
      for (const n of [1, 2]) {
        const result = { data: { n } };
        markShared(result);
        expect(sink.write(result, n === 2)).toBe(true);
        corked.push(res.socket!.writableCorked);
      }
      res.end();
    };
    const body = await new Promise<string>((resolve, reject) => {
      get(url, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve(text));
      }).once('error', reject);
    });
    expect(corked).toEqual([0, 0, 0]);
    expect(body).toBe(':\n\nevent: next\ndata: {"data":{"n":1}}\n\nevent: next\ndata: {"data":{"n":2}}\n\n');
  });

  it('a result that is not shared is left to the caller', () => {
    const sink = new SseSink({ once: () => undefined } as unknown as ServerResponse, {} as GraphQLServer);
    expect(sink.write({ data: { n: 1 } }, false)).toBe(false);
  });
});
