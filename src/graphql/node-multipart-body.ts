/**
 * The Node side of a GraphQL multipart body. When Yoga runs as a Node handler, its server context
 * holds the IncomingMessage, and until a parser reads it the request's bytes are still there. Read
 * through Yoga's Request they would pass a web ReadableStream, a TransformStream (the body cap), a
 * second Request and a Readable.from before busboy, each queueing and copying: under 20 concurrent
 * 10 MB uploads that chain cost a fifth of the CPU in GC and buffer handling. useBodyLimits instead
 * pipes the IncomingMessage through one counting Transform ({@link countNodeBody}) and leaves it here
 * for useStreamingUploads ({@link takeNodeBody}), keyed by Yoga's Request for that one request.
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type Readable } from 'node:stream';

const bodies = new WeakMap<Request, Readable>();
const nodeBodyParsers = new WeakSet<object>();

/** Marks `parser` as one that parses the body {@link putNodeBody} left when there is one. */
export function takesNodeBody<T extends object>(parser: T): T {
  nodeBodyParsers.add(parser);
  return parser;
}

/** Whether `parser` was marked by {@link takesNodeBody}. */
export function isNodeBodyParser(parser: object): boolean {
  return nodeBodyParsers.has(parser);
}

/** The IncomingMessage of `serverContext` when no one has read from it yet, else undefined. */
export function unreadNodeRequest(serverContext: unknown): IncomingMessage | undefined {
  const req = (serverContext as { req?: IncomingMessage } | undefined)?.req;
  if (!req || typeof req.pipe !== 'function' || req.readableDidRead || req.readableEnded || req.destroyed) return undefined;
  return req;
}

/**
 * `req` piped through a Transform that errors with `tooLarge()` once more than `limit` bytes passed
 * (the rest of the body stays unread). A client leaving mid-body errors it too: pipe() forwards
 * neither, and an IncomingMessage 'error' nobody hears would end the process.
 */
export function countNodeBody(req: IncomingMessage, limit: number, tooLarge: () => Error): Readable {
  let seen = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > limit) done(tooLarge());
      else done(null, chunk);
    },
  });
  const left = () => {
    if (!req.complete && !counted.destroyed) counted.destroy(new Error('the client closed the connection before the body ended'));
  };
  req.on('error', left);
  req.once('close', left);
  // Unpiped on the Transform's error (pipe does that); nothing else reads the rest then.
  return req.pipe(counted);
}

/** Leaves `body` (from {@link countNodeBody}) for the parser of `request`. */
export function putNodeBody(request: Request, body: Readable): void {
  bodies.set(request, body);
}

/** The body {@link putNodeBody} left for `request`, once. */
export function takeNodeBody(request: Request): Readable | undefined {
  const body = bodies.get(request);
  bodies.delete(request);
  return body;
}
