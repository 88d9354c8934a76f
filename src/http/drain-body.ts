/**
 * Reading and throwing away the body of a request that is refused before its route reads it (a
 * missing key, a limit). A client still uploading when the answer comes would otherwise see a broken
 * connection (EPIPE) instead of the 401 or 429; reading at most what an accepted request could send
 * keeps a refused client from making the service read more.
 */
import type { IncomingMessage } from 'node:http';

/** Whether a body is (still) on its way. */
export function bodyPending(req: IncomingMessage): boolean {
  if (req.complete) return false;
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/**
 * Reads the rest of `req`'s body and throws it away. Resolves true once it ended within `maxBytes`,
 * false as soon as it announces or sends more (or fails): answer then, and close the connection.
 */
export function drainBody(req: IncomingMessage, maxBytes: number): Promise<boolean> {
  if (!bodyPending(req)) return Promise.resolve(true);
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) {
    req.resume();
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    let seen = 0;
    req.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > maxBytes) resolve(false);
    });
    req.once('end', () => resolve(true));
    // A client that gives up mid-body gets nothing; its socket is gone.
    req.once('error', () => resolve(false));
    req.once('close', () => resolve(req.complete));
    req.resume();
  });
}
