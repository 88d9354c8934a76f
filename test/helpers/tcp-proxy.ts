/** A TCP proxy a test can cut: a database or Redis that goes away and comes back, on the same port. */
import { once } from 'node:events';
import { createServer, type Server, type Socket, connect } from 'node:net';

/** A running proxy; `port` stays the same across `stop()` and `restart()`. */
export interface TcpProxy {
  port: number;
  /** Refuses new connections from now on and cuts the open ones. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
}

/** A proxy on a free port of 127.0.0.1 to `host:targetPort`. */
export async function startProxy(targetPort: number, host = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = async (): Promise<void> => {
    const s = createServer((client) => {
      const upstream = connect(targetPort, host);
      for (const sock of [client, upstream]) {
        sockets.add(sock);
        sock.on('error', () => undefined);
        sock.on('close', () => sockets.delete(sock));
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    s.listen(port, '127.0.0.1');
    await once(s, 'listening');
    port = (s.address() as { port: number }).port;
    server = s;
  };
  await listen();
  return {
    port,
    stop: async () => {
      const s = server;
      server = undefined;
      if (!s) return;
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    restart: listen,
  };
}
