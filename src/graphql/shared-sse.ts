/**
 * Yoga's SSE result processor, with shared results written as the bytes shared-payload.ts made once
 * for every stream, and one keep-alive timer for all streams instead of one each. Everything else is
 * as Yoga writes it (graphql-yoga's result-processor/sse.js): a `:` comment first (some browsers
 * wait for a first chunk), `event: next` per result, `event: complete` at the end, a `:` ping every
 * 12 s (300 ms under NODE_ENV=test) while the stream is not backed up. A subscription whose
 * frames an SseSink writes straight to the Node response (direct-sse.ts) gets that sink's answer instead.
 */
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { ExecutionResult } from 'graphql';
import { acceptsSse, SseSink } from './direct-sse.js';
import { KeepAliveSet, SSE_PING_MS } from './keep-alive.js';
import { sharedSseEvent } from './shared-payload.js';

/** The Fetch API Yoga hands to a result processor. */
interface FetchApi {
  ReadableStream: typeof ReadableStream;
  Response: typeof Response;
}

const encoder = new TextEncoder();
const PING = encoder.encode(':\n\n');
const COMPLETE = encoder.encode('event: complete\ndata:\n\n');

/** The open streams, pinged by one keep-alive. */
const pinged: KeepAliveSet<ReadableStreamDefaultController<Uint8Array>> = new KeepAliveSet(SSE_PING_MS, (c) => {
  // desiredSize null: errored; 0: backed up or closed (not final, so it stays).
  if (c.desiredSize === null) pinged.delete(c);
  else if (c.desiredSize > 0) c.enqueue(PING);
});

/** The plugin: takes over Yoga's SSE answer for streamed results (subscriptions). */
export function useSharedSse(): Plugin {
  return {
    onResultProcess({ request, result, setResultProcessor, serverContext }) {
      if (!isAsyncIterable(result) || !acceptsSse(request.headers.get('accept') ?? '')) return;
      // A sink that took the subscription (direct-sse.ts, through node-handler.ts) writes it to the Node response itself.
      const sink = (serverContext as { liveSink?: unknown }).liveSink;
      const direct = sink instanceof SseSink && sink.claimed ? sink : undefined;
      setResultProcessor(
        (res, fetchAPI) =>
          direct
            ? direct.answer(res as AsyncIterable<ExecutionResult>, stringifyResult, fetchAPI as FetchApi)
            : sseResponse(res as AsyncIterable<ExecutionResult>, fetchAPI as FetchApi),
        'text/event-stream',
      );
    },
  };
}

/** The `text/event-stream` response of a stream of results. */
function sseResponse(results: AsyncIterable<ExecutionResult>, fetchAPI: FetchApi): Response {
  const iterator = results[Symbol.asyncIterator]();
  let own: ReadableStreamDefaultController<Uint8Array> | undefined;
  const body = new fetchAPI.ReadableStream<Uint8Array>({
    start(controller) {
      own = controller;
      controller.enqueue(PING);
      pinged.add(controller);
    },
    async pull(controller) {
      try {
        const step = await iterator.next();
        if (step.value != null) controller.enqueue(sharedSseEvent(step.value) ?? encoder.encode(`event: next\ndata: ${stringifyResult(step.value)}\n\n`));
        if (step.done) {
          controller.enqueue(COMPLETE);
          pinged.delete(controller);
          controller.close();
        }
      } catch (err) {
        pinged.delete(controller);
        controller.error(err);
      }
    },
    async cancel() {
      if (own) pinged.delete(own);
      await iterator.return?.();
    },
  });
  return new fetchAPI.Response(body, {
    status: 200,
    headers: { 'Content-Type': 'text/event-stream', Connection: 'keep-alive', 'Cache-Control': 'no-cache', 'Content-Encoding': 'none' },
  });
}

/**
 * A result that is not shared, as Yoga writes it (jsonStringifyResultWithoutInternals, not exported):
 * its errors without the `http` and `unexpected` extensions, which are for the server only.
 */
function stringifyResult(result: ExecutionResult): string {
  if (!result.errors?.length && !result.extensions?.['http']) return JSON.stringify(result);
  const errors = result.errors?.map((error) => {
    const json = (typeof error.toJSON === 'function' ? error.toJSON() : error) as { extensions?: Record<string, unknown> };
    const { http: _http, unexpected: _unexpected, ...extensions } = json.extensions ?? {};
    return { ...json, extensions: Object.keys(extensions).length > 0 ? extensions : undefined };
  });
  const { http: _http, ...extensions } = result.extensions ?? {};
  return JSON.stringify({ ...result, errors, extensions: Object.keys(extensions).length > 0 ? extensions : undefined });
}
