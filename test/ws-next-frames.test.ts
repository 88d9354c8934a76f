/**
 * graphql-ws `next` messages written as whole frames to a socket's stream (src/graphql/ws-next-frames.ts),
 * received by a real `ws` client from a real server on port 0: every length encoding of RFC 6455,
 * multi-byte ids, order among ws' own messages, and the fall-back to `send`.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { messageFrame, rememberWire, sendMessage } from '../src/graphql/ws-next-frames.js';

interface Pair {
  server: WebSocket;
  client: WebSocket;
  /** Text messages the client received, in order. */
  received: string[];
  /** Resolves once the client holds `n` messages. */
  receivedAll(n: number): Promise<string[]>;
}

let httpServer: Server | undefined;
const open: WebSocket[] = [];

afterEach(async () => {
  for (const socket of open.splice(0)) socket.terminate();
  await new Promise<void>((resolve) => (httpServer ? httpServer.close(() => resolve()) : resolve()));
  httpServer = undefined;
});

/** A server socket and its client; `remember`: whether the server records the socket's stream (as ws.ts does). */
async function connect({ remember = true, deflate = false, onWire = (_: Duplex) => undefined as unknown } = {}): Promise<Pair> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: deflate });
  const accepted = new Promise<WebSocket>((resolve) => {
    httpServer = createServer();
    httpServer.on('upgrade', (request, socket, head) =>
      wss.handleUpgrade(request, socket, head, (ws) => {
        if (remember) rememberWire(ws, socket);
        onWire(socket);
        resolve(ws);
      }),
    );
  });
  await new Promise<void>((resolve) => httpServer!.listen(0, '127.0.0.1', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(httpServer!.address() as AddressInfo).port}`, { perMessageDeflate: deflate });
  const received: string[] = [];
  const waiters: (() => void)[] = [];
  client.on('message', (data: Buffer, isBinary: boolean) => {
    expect(isBinary).toBe(false);
    received.push(data.toString());
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => client.once('open', resolve).once('error', reject));
  const server = await accepted;
  open.push(client, server);
  const receivedAll = async (n: number): Promise<string[]> => {
    while (received.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
    return received;
  };
  return { server, client, received, receivedAll };
}

/** `,"type":"next","payload":{"s":"xxx…"}}` making the whole message `total` bytes with `quotedId`. */
function restFor(quotedId: string, total: number): Uint8Array {
  const fixed = Buffer.byteLength(`{"id":${quotedId},"type":"next","payload":{"s":""}}`);
  return Buffer.from(`,"type":"next","payload":{"s":"${'x'.repeat(total - fixed)}"}}`);
}

describe('graphql-ws messages written as whole frames', () => {
  it('arrives intact at every length encoding (7-bit, 16-bit, 64-bit) and with a multi-byte id', async () => {
    const pair = await connect();
    const ids = [JSON.stringify('0d6c1f7e-2c1b-4a52-9c3e-5f0f0e1d2c3b'), JSON.stringify('größe-日本-✓')];
    // Around each boundary of the length field: 125 | 126, 65535 | 65536.
    const totals = [100, 125, 126, 127, 65_535, 65_536, 70_000];
    const expected: string[] = [];
    for (const quotedId of ids) {
      for (const total of totals) {
        const rest = restFor(quotedId, total);
        sendMessage(pair.server, quotedId, rest);
        const text = `{"id":${quotedId}${Buffer.from(rest).toString()}`;
        expect(Buffer.byteLength(text)).toBe(total);
        expected.push(text);
      }
    }
    const got = await pair.receivedAll(expected.length);
    expect(got).toEqual(expected);
    expect(JSON.parse(got[ids.length * totals.length - 1]!)).toMatchObject({ id: 'größe-日本-✓', type: 'next' });
  });

  it('writes the header RFC 6455 asks for: FIN + text, then the shortest length field', () => {
    const short = messageFrame('"a"', Buffer.from('}'));
    expect([...short.subarray(0, 2)]).toEqual([0x81, short.length - 2]);
    const medium = messageFrame('"a"', new Uint8Array(200));
    expect([medium[0], medium[1], medium.readUInt16BE(2)]).toEqual([0x81, 126, medium.length - 4]);
    const long = messageFrame('"a"', new Uint8Array(0x10000));
    expect([long[0], long[1], long.readUInt32BE(2), long.readUInt32BE(6)]).toEqual([0x81, 127, 0, long.length - 10]);
  });

  it('keeps its place among messages ws sends itself', async () => {
    const pair = await connect();
    const rest = Buffer.from(',"type":"next","payload":{"n":2}}');
    pair.server.send('{"type":"first"}');
    sendMessage(pair.server, '"op"', rest);
    pair.server.send('{"type":"third"}');
    expect(await pair.receivedAll(3)).toEqual(['{"type":"first"}', '{"id":"op","type":"next","payload":{"n":2}}', '{"type":"third"}']);
  });

  it('drops a frame for a stream destroyed under a still OPEN socket, without an error reaching the process', async () => {
    let wire: Duplex | undefined;
    const pair = await connect({ onWire: (w) => (wire = w) });
    wire!.destroy(); // a reset: ws sees the close only on a later turn
    expect(pair.server.readyState).toBe(WebSocket.OPEN);
    expect(() => sendMessage(pair.server, '"op"', Buffer.from(',"type":"next","payload":{}}'))).not.toThrow();
    // ws' close follows; an error emitted on the stream would fail this test as unhandled.
    await new Promise<void>((resolve) => pair.server.once('close', () => resolve()));
  });

  it.each<[string, { remember?: boolean; deflate?: boolean }]>([
    ['whose stream was not recorded', { remember: false }],
    ['with permessage-deflate negotiated', { deflate: true }],
  ])('goes through ws for a socket %s', async (_, options) => {
    const pair = await connect(options);
    if (options.deflate) expect(pair.server.extensions).toContain('permessage-deflate');
    const send = vi.spyOn(pair.server, 'send');
    const rest = restFor('"op"', 5_000);
    sendMessage(pair.server, '"op"', rest);
    expect(send).toHaveBeenCalledTimes(1);
    const [text] = await pair.receivedAll(1);
    expect(text).toBe(`{"id":"op"${Buffer.from(rest).toString()}`);
  });
});
