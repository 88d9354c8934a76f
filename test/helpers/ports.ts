/** Ports for tests. */
import { once } from 'node:events';
import { createServer } from 'node:net';

/** A port nothing listens on (it was free a moment ago): a server that is down. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
