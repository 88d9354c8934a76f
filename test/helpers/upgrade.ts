/** Opening a graphql-ws socket by hand, to see how the server answers the upgrade itself. */
import WebSocket from 'ws';

/** The open socket, or the HTTP answer (status and body) that refused the upgrade. */
export function tryUpgrade(baseUrl: string, headers: Record<string, string> = {}): Promise<{ socket: WebSocket } | { status: number; body: string }> {
  const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws', { headers });
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve({ socket }));
    socket.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    socket.once('error', reject);
  });
}
