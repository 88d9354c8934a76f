/**
 * Yoga on a Node request. An SSE subscription request gets a sink (direct-sse.ts) in its server
 * context: when the subscription takes it, its frames are written straight to `res`, not through a
 * web ReadableStream and @whatwg-node's pump; everything else is answered as `yoga(req, res)` does.
 * A small SSE body is read first (buffered-request.ts), so the stream holds nothing of the Request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendNodeResponse } from '@whatwg-node/server';
import { bufferable, bufferedRequest } from './buffered-request.js';
import { acceptsSse, SseSink } from './direct-sse.js';
import { wantsEventStream } from './live-connections.js';
import type { GraphQLServer } from './yoga.js';

/** Answers `req` with `yoga`; resolves once the answer is handed over (a stream may go on). */
export async function serveGraphQL(yoga: GraphQLServer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!wantsEventStream(req) || !acceptsSse(req.headers.accept ?? '')) return yoga(req, res);
  const sink = new SseSink(res, yoga);
  const context = { req, res, liveSink: sink };
  let response: Response;
  if (bufferable(req)) {
    const request = await bufferedRequest(req, yoga.fetchAPI);
    if (!request) return; // the client left mid-body: nobody to answer
    response = await yoga.handleRequest(request, context);
  } else response = await yoga.handleNodeRequestAndResponse(req, res, context);
  if (sink.carries(response)) sink.open(response);
  else await sendNodeResponse(response, res, req, true); // true: as yoga(req, res) calls it
}
