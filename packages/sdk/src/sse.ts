/**
 * GraphQL over Server-Sent Events, as the service's Yoga speaks it (one POST per subscription,
 * `event: next` per result, `event: complete` at the end, `:` keep-alive comments): `watch`'s
 * transport where a WebSocket cannot get through (a proxy that drops upgrades, say).
 */
import type { GraphQLFormattedError } from 'graphql';

/** One parsed SSE event: its `event:` name (default `next`) and its joined `data:` lines. */
interface SseEvent {
  event: string;
  data: string;
}

/** A result of the stream: GraphQL's `data` and `errors`. */
export interface StreamedResult<R> {
  data?: R | null;
  errors?: readonly GraphQLFormattedError[];
}

/** Why the stream could not start: the HTTP status, when there was one. */
export class SseRefusal extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errors: readonly GraphQLFormattedError[],
  ) {
    super(message);
  }
}

/**
 * The results of one subscription over SSE until `complete` (or the stream ends); `signal` (or
 * leaving the loop) aborts the request. A refused request (401, 403, 413, ...) throws SseRefusal.
 */
export async function* subscribeOverSse<R>(
  fetchImpl: typeof fetch,
  url: string,
  headers: Record<string, string>,
  body: { query: string; variables: Record<string, unknown> },
  signal?: AbortSignal,
): AsyncGenerator<StreamedResult<R>, void, undefined> {
  const abort = new AbortController();
  const forward = () => abort.abort(signal?.reason);
  if (signal?.aborted) forward();
  signal?.addEventListener('abort', forward, { once: true });
  try {
    const res = await fetchImpl(url, {
      method: 'POST',
      headers: { ...headers, accept: 'text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: abort.signal,
    });
    if (!res.ok || !res.body || !(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      const reply = (await res.json().catch(() => ({}))) as { errors?: GraphQLFormattedError[] };
      const errors = reply.errors ?? [];
      throw new SseRefusal(errors.length ? errors.map((e) => e.message).join('; ') : `${url} answered HTTP ${res.status} to the progress stream`, res.status, errors);
    }
    for await (const { event, data } of sseEvents(res.body)) {
      if (event === 'complete') return;
      if (event === 'next' && data) yield JSON.parse(data) as StreamedResult<R>;
    }
  } finally {
    signal?.removeEventListener('abort', forward);
    abort.abort(); // ends the request when the caller left early
  }
}

/** The events of a `text/event-stream` body; comments (keep-alives) are left out. */
async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      // Normalised over the whole buffer, so a CRLF split between two chunks is still one line end.
      buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n/g, '\n');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'next';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = value;
          else if (field === 'data') data.push(value);
        }
        if (data.length > 0 || event !== 'next') yield { event, data: data.join('\n') };
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
