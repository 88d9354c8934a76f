/**
 * A webhook receiver for tests and benchmarks: node:http on port 0 that verifies every request
 * with the `standardwebhooks` library, as a real receiver would, and answers what it is told.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** One request the receiver got. */
export interface Received {
  id: string;
  headers: Record<string, string>;
  body: string;
  /** The parsed body when the signature verified; undefined otherwise (see `error`). */
  payload: { type: string; timestamp: string; data: Record<string, unknown> } | undefined;
  error: string | undefined;
  /** What it answered. */
  status: number;
}

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Answers the n-th request (0-based) with this status. @default 200 for all */
  respond: (n: number, got: Received) => number;
  close(): Promise<void>;
}

/** Starts a receiver verifying with `secret` (`whsec_...`) on `port` (@default 0: any free port). */
export async function startReceiver(secret: string, port = 0): Promise<Receiver> {
  const wh = new Webhook(secret);
  const receiver: Receiver = {
    url: '',
    port: 0,
    received: [],
    respond: () => 200,
    close: () => new Promise<void>((done) => {
      server.closeAllConnections();
      server.close(() => done());
    }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      let payload: Received['payload'];
      let error: string | undefined;
      try {
        payload = wh.verify(body, headers) as Received['payload'];
      } catch (err) {
        error = (err as Error).message;
      }
      const got: Received = { id: headers['webhook-id'] ?? '', headers, body, payload, error, status: 0 };
      got.status = receiver.respond(receiver.received.length, got);
      receiver.received.push(got);
      res.writeHead(got.status, { 'content-type': 'text/plain' });
      res.end(got.status < 300 ? 'ok' : 'no');
    });
  });
  await new Promise<void>((done) => server.listen(port, '127.0.0.1', () => done()));
  receiver.port = (server.address() as AddressInfo).port;
  receiver.url = `http://127.0.0.1:${receiver.port}`;
  return receiver;
}
