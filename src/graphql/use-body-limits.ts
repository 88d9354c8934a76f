/**
 * A Yoga plugin that limits request bodies by kind. Only a multipart upload needs room for an image;
 * a JSON query (or any other body) fits in {@link JSON_BODY_LIMIT}, so a flood of large JSON bodies
 * cannot take the memory an image-sized limit would allow each of them. The declared Content-Length
 * is checked before anything is read; a chunked body is counted as it streams and cut where it
 * crosses the limit. Either way: 413, a GraphQL error naming the limit, and the connection closed.
 *
 * It wraps whichever parser the plugins before it chose, so it must come after useStreamingUploads.
 * A multipart body that parser takes from Node (node-multipart-body.ts) is counted by a Node
 * Transform on the IncomingMessage, not by a TransformStream on Yoga's web stream of it.
 */
import type { ServerResponse } from 'node:http';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { countNodeBody, isNodeBodyParser, putNodeBody, unreadNodeRequest } from './node-multipart-body.js';

/** Largest GraphQL request body that is not multipart (JSON, GraphQL strings, forms), in bytes. */
export const JSON_BODY_LIMIT = 1024 * 1024;

/** Options of {@link useBodyLimits}. */
export interface BodyLimitsOptions {
  /** Largest reference image in bytes (MAX_FILE_SIZE); a multipart body may be this plus `multipartMargin`. Required. */
  maxFileSize: number;
  /** Room for the multipart `operations` and `map` fields and part headers next to the file. @default 131072 */
  multipartMargin?: number;
  /** Largest body that is not multipart. @default JSON_BODY_LIMIT */
  maxOtherBytes?: number;
}

/** Limits GraphQL request bodies: multipart to the file size plus a margin, anything else to {@link JSON_BODY_LIMIT}. */
export function useBodyLimits(options: BodyLimitsOptions): Plugin {
  const multipartLimit = options.maxFileSize + (options.multipartMargin ?? 128 * 1024);
  const otherLimit = options.maxOtherBytes ?? JSON_BODY_LIMIT;
  return {
    onRequestParse({ request, requestParser, setRequestParser, serverContext, fetchAPI }) {
      const multipart = (request.headers.get('content-type') ?? '').toLowerCase().startsWith('multipart/form-data');
      const limit = multipart ? multipartLimit : otherLimit;
      const kind = multipart ? `a multipart request (MAX_FILE_SIZE is ${options.maxFileSize})` : 'a request that is not multipart';
      const res = (serverContext as { res?: ServerResponse }).res;
      const tooLarge = (size: string) => {
        // The rest of the body is not worth reading: Node sends `Connection: close` and drops the socket after the reply.
        if (res && !res.headersSent) res.shouldKeepAlive = false;
        return createGraphQLError(`Request body ${size}exceeds the limit of ${limit} bytes for ${kind}`, {
          extensions: { http: { status: 413 }, code: 'REQUEST_ENTITY_TOO_LARGE' },
        });
      };

      const declared = request.headers.get('content-length');
      if (declared !== null && /^\d+$/.test(declared) && Number(declared) > limit) throw tooLarge(`of ${declared} bytes `);
      if (!requestParser || !request.body) return;

      const parse = requestParser;
      const nodeReq = multipart && isNodeBodyParser(parse) ? unreadNodeRequest(serverContext) : undefined;
      if (nodeReq) {
        setRequestParser((req) => {
          putNodeBody(req, countNodeBody(nodeReq, limit, () => tooLarge('')));
          return parse(req);
        });
        return;
      }
      setRequestParser((req) => {
        if (!req.body) return parse(req);
        let seen = 0;
        // Yoga's own body limit does the same: a native ReadableStream needs the native TransformStream.
        const Transform = req.body instanceof ReadableStream ? globalThis.TransformStream : fetchAPI.TransformStream;
        const counted = req.body.pipeThrough(
          new Transform<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              seen += chunk.byteLength;
              if (seen > limit) controller.error(tooLarge(''));
              else controller.enqueue(chunk);
            },
          }),
        );
        const limited = new fetchAPI.Request(req.url, {
          method: req.method,
          headers: req.headers,
          signal: req.signal,
          body: counted,
          // Node's fetch requires this for a streamed body (missing from the DOM typings).
          duplex: 'half',
        } as RequestInit);
        return parse(limited);
      });
    },
  };
}
