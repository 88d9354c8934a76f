/**
 * A Fetch Request made from a Node request whose small body has been read into memory first. Yoga's
 * Node adapter bridges the body with a stream whose listeners stay on the IncomingMessage until it
 * closes, and so hold the Request (headers, body text) for as long as an SSE subscription streams;
 * a Request over a buffer holds nothing of the Node request.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** Largest body read ahead (a subscription's JSON is a few hundred bytes). @default 64 KiB */
export const MAX_BUFFERED_BODY = 64 * 1024;

/**
 * Whether `req` has a body of a known length up to {@link MAX_BUFFERED_BODY} (a POST with
 * Content-Length; chunked or larger bodies keep Yoga's own streaming, limits and answers).
 */
export function bufferable(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.method === 'POST' && length !== undefined && /^\d+$/.test(length) && Number(length) <= MAX_BUFFERED_BODY;
}

/** `req` as a Request of `fetchAPI`, its body read whole; null when the client went away before. */
export async function bufferedRequest(req: IncomingMessage, fetchAPI: { Request: typeof Request; Headers: typeof Headers }): Promise<Request | null> {
  const chunks: Buffer[] = [];
  const complete = await new Promise<boolean>((resolve) => {
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => resolve(true));
    req.once('close', () => resolve(req.complete));
    req.once('error', () => resolve(false));
  });
  if (!complete) return null;
  const headers = new fetchAPI.Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  // As Yoga's adapter builds the URL: the Host header, https on a TLS socket.
  const protocol = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
  const url = `${protocol}://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`;
  return new fetchAPI.Request(url, { method: 'POST', headers, body: Buffer.concat(chunks) });
}
