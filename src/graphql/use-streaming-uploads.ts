/**
 * A Yoga plugin that parses GraphQL multipart requests with graphql-upload-minimal instead of Yoga's
 * own parser, which buffers every file in memory and runs the resolver only after the last byte. Here
 * the resolver starts as soon as `operations` and `map` arrived and streams the file to disk.
 *
 * The body it parses is the one useBodyLimits counts, so the multipart cap still holds: under a Node
 * server the IncomingMessage through one Transform (node-multipart-body.ts), else Yoga's web body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { processRequest, type UploadOptions } from 'graphql-upload-minimal';
import { createGraphQLError, type GraphQLParams, type Plugin } from 'graphql-yoga';
import { countNodeBody, takeNodeBody, takesNodeBody, unreadNodeRequest } from './node-multipart-body.js';

/** Options of {@link useStreamingUploads}: graphql-upload-minimal's limits. */
export interface StreamingUploadsOptions {
  /**
   * Largest file busboy passes on before it cuts the file and flags it truncated. The upload sink
   * enforces the real limit; busboy flags a file of exactly `maxFileSize` bytes as truncated, so pass
   * the real limit + 1. @default Infinity
   */
  maxFileSize?: number;
  /** Files per request. @default 1 */
  maxFiles?: number;
  /** Largest `operations` or `map` field, in bytes. @default 65536 */
  maxFieldSize?: number;
}

/** Streams GraphQL multipart requests (POST `multipart/form-data`) through graphql-upload-minimal. */
export function useStreamingUploads(options: StreamingUploadsOptions = {}): Plugin {
  const uploadOptions: UploadOptions = {
    maxFileSize: options.maxFileSize ?? Infinity,
    maxFiles: options.maxFiles ?? 1,
    maxFieldSize: options.maxFieldSize ?? 64 * 1024,
  };
  return {
    onRequestParse({ request, setRequestParser, serverContext }) {
      const type = request.headers.get('content-type') ?? '';
      if (request.method !== 'POST' || !type.toLowerCase().startsWith('multipart/form-data')) return;
      // Registered after this plugin, useBodyLimits wraps this parser: it leaves the Node request's
      // body counted against the cap (node-multipart-body.ts), or gives a Request whose web body it counts.
      setRequestParser(
        takesNodeBody(async (req: Request) => {
          const { req: incoming, res } = serverContext as { req?: IncomingMessage; res?: ServerResponse };
          const body = takeNodeBody(req) ?? nodeBody(incoming) ?? webBody(req, incoming);
          const nodeReq = Object.assign(body, {
            headers: { 'content-type': req.headers.get('content-type') ?? '' },
          });
          // processRequest never listens for 'error' on the request. When the body cap errors the stream
          // mid-file, an unhandled 'error' would kill the process; and the unread rest of the body would
          // hang the keep-alive connection for the client's next request. So: swallow it (the file
          // stream reports it to the resolver) and close the connection once the reply is out.
          let bodyError: unknown;
          nodeReq.on('error', (err) => {
            bodyError = err;
            if (!res) return;
            if (!res.headersSent) res.shouldKeepAlive = false; // Node then sends `Connection: close`
            else if (res.writableFinished) res.socket?.destroy();
            else res.once('finish', () => res.socket?.destroy());
          });
          try {
            // processRequest is typed for an IncomingMessage but uses only `headers` and the Readable side,
            // and its response argument only to notice the reply closing (we have none to give).
            const operations = await processRequest(nodeReq as unknown as IncomingMessage, undefined as unknown as ServerResponse, uploadOptions);
            // `variables` holds Upload instances where the map put files; the Upload scalar turns them into promises.
            return operations as GraphQLParams | GraphQLParams[];
          } catch (err) {
            const e = err as { status?: number; message?: string; extensions?: unknown };
            if (e.extensions) throw err; // already a GraphQLError (Yoga's 413)
            // The cap cut the body before the parser was done: processRequest saw the stream close
            // (499, "disconnected"), but the answer is the cap's 413 that names the limit.
            if ((bodyError as { extensions?: unknown } | undefined)?.extensions) throw bodyError;
            const status = typeof e.status === 'number' ? e.status : 400;
            throw createGraphQLError(e.message ?? 'Invalid multipart request', {
              extensions: { http: { status }, code: status === 413 ? 'REQUEST_ENTITY_TOO_LARGE' : 'BAD_REQUEST' },
            });
          }
        }),
      );
    },
  };
}

/** The Node request itself when the body cap left nothing (useBodyLimits not in the plugins). */
function nodeBody(incoming: IncomingMessage | undefined): Readable | undefined {
  const unread = unreadNodeRequest(incoming && { req: incoming });
  return unread && countNodeBody(unread, Infinity, () => new Error('unreachable'));
}

/** Yoga's web body as a Node stream (no Node request: `yoga.fetch`, or one already read). */
function webBody(req: Request, incoming: IncomingMessage | undefined): Readable {
  if (!req.body) throw createGraphQLError('Missing multipart body', { extensions: { http: { status: 400 }, code: 'BAD_REQUEST' } });
  // Byte mode: at most 16 KiB read ahead of busboy (object mode would buffer 16 chunks of any size).
  const body = Readable.from(req.body as unknown as AsyncIterable<Uint8Array>, { objectMode: false });
  // A client that leaves mid-body (or is cut by BODY_TIMEOUT): the web stream Yoga made of the
  // request errors today, but nothing promises it; if it just stopped, the file part would wait
  // forever with its part file open. Destroying the body makes processRequest fail the file stream,
  // so the sink deletes the part file.
  incoming?.once('close', () => {
    if (!incoming.complete && !body.destroyed) body.destroy(new Error('the client closed the connection before the body ended'));
  });
  return body;
}
