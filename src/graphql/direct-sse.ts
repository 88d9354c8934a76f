/**
 * SSE subscriptions written straight to the Node response: the live-sink.ts sink of one SSE
 * request. Shared results are written as the bytes shared-payload.ts made once for every stream;
 * what the sink does not take (results with errors) and the end come from the operation's iterator
 * (`pump`). The format is Yoga's (graphql-yoga's result-processor/sse.js): a `:` comment first
 * (some browsers wait for a first chunk), `event: next` per result, `event: complete` at the end, a
 * `:` ping every 12 s (300 ms under NODE_ENV=test) while the stream is not backed up. Until the
 * response's head is written (node-handler.ts, once Yoga has answered), writes wait in order.
 */
import type { ServerResponse } from 'node:http';
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import type { GraphQLContext } from './context.js';
import { envelopeOf, throughEnvelope, type Envelope } from './enveloped-results.js';
import { KeepAliveSet, SSE_PING_MS } from './keep-alive.js';
import { MAX_BEHIND_BYTES, type LiveSink } from './live-sink.js';
import { sharedSseEvent } from './shared-payload.js';
import type { GraphQLServer } from './graphql-server.js';

const encoder = new TextEncoder();
export const PING = encoder.encode(':\n\n');
export const COMPLETE = encoder.encode('event: complete\ndata:\n\n');

/** The head of every SSE answer, as Yoga writes it. */
export const SSE_HEADERS = { 'Content-Type': 'text/event-stream', Connection: 'keep-alive', 'Cache-Control': 'no-cache', 'Content-Encoding': 'none' } as const;

/** Whether a request with this Accept header gets an SSE stream for a subscription (not multipart). */
export function acceptsSse(accept: string): boolean {
  return accept.includes('text/event-stream') && !accept.includes('multipart/mixed');
}

/** The open sinks, pinged by one keep-alive. */
const pinged = new KeepAliveSet<SseSink>(SSE_PING_MS, (sink) => sink.ping());

/** The sink of one SSE request; see the file comment. */
export class SseSink implements LiveSink {
  readonly kind = 'sse';
  #claimed = false;
  /** Writes made before the head; undefined once open. `null` stands for the end. */
  #pending: (Uint8Array | null)[] | undefined = [];
  #closed = false;
  #onClose: (() => void) | undefined;
  /** The answer Yoga gave for this request when it is this sink's stream. */
  #response: Response | undefined;
  /** The raw results this sink consumes itself (adopt), with the slim arguments they run with. */
  #adopted: { raw: AsyncGenerator<ExecutionResult, void, void>; args: ExecutionArgs } | undefined;
  /** What the pump reads now; `return()` on it ends the subscription. */
  #iterator: AsyncIterator<ExecutionResult> | undefined;

  /** `yoga`: for an envelope of its own when an adopted stream carries a result to mask. */
  constructor(
    private readonly res: ServerResponse,
    private readonly yoga: GraphQLServer,
  ) {
    res.once('close', () => {
      this.#closed = true;
      pinged.delete(this);
      this.#onClose?.();
    });
  }

  adopt(raw: AsyncGenerator<ExecutionResult, void, void>, args: ExecutionArgs): boolean {
    this.#adopted = { raw, args };
    return true;
  }

  /** Whether a subscription took this sink. */
  get claimed(): boolean {
    return this.#claimed;
  }

  claim(): boolean {
    if (this.#claimed) return false;
    return (this.#claimed = true);
  }

  write(result: ExecutionResult, final: boolean): boolean {
    const bytes = sharedSseEvent(result);
    if (bytes === undefined) return false;
    this.#write(bytes, final);
    return true;
  }

  /**
   * Yoga's answer when this sink carries the stream: a head without a body (node-handler.ts writes
   * it and `open`s the sink), and `results` (the operation's iterator) pumped for what the sink did
   * not take and for the end.
   */
  answer(results: AsyncIterable<ExecutionResult>, stringify: (result: ExecutionResult) => string, fetchAPI: { Response: typeof Response }): Response {
    // An adopted stream replaces Yoga's (which ends at once): not even held, so its wrappers and request go.
    const adopted = this.#adopted;
    this.#adopted = undefined;
    void this.#pump(adopted ?? { results }, stringify);
    return (this.#response = new fetchAPI.Response(null, { status: 200, headers: SSE_HEADERS }));
  }

  /** True when `response` is this sink's stream (see `answer`); asked once, then the sink lets go of it. */
  carries(response: Response): boolean {
    const ours = this.#claimed && response === this.#response;
    this.#response = undefined;
    return ours;
  }

  /** Writes the head of `response` (Yoga's, with its CORS headers), then every write so far. */
  open(response: Response): void {
    if (this.#closed) return;
    const socket = this.res.socket;
    // As @whatwg-node/server does for a streamed body: no idle timeout, no Nagle delay.
    socket?.setTimeout(0);
    socket?.setNoDelay(true);
    socket?.setKeepAlive(true);
    const head: Record<string, string> = {};
    response.headers.forEach((value, key) => (head[key] = value));
    this.res.writeHead(response.status, head);
    this.#send(PING);
    const pending = this.#pending ?? [];
    this.#pending = undefined;
    for (const item of pending) this.#write(item, true);
    if (!this.res.writableEnded) pinged.add(this);
  }

  async #pump(
    from: { raw: AsyncGenerator<ExecutionResult, void, void>; args: ExecutionArgs } | { results: AsyncIterable<ExecutionResult> },
    stringify: (result: ExecutionResult) => string,
  ): Promise<void> {
    let raw = 'raw' in from ? from.raw : undefined;
    const args = 'args' in from ? from.args : undefined;
    let iterator = (this.#iterator = 'results' in from ? from.results[Symbol.asyncIterator]() : from.raw);
    this.#onClose = () => void this.#iterator?.return?.();
    if (this.#closed) return this.#onClose();
    try {
      for (;;) {
        let step: IteratorResult<ExecutionResult>;
        try {
          step = await iterator.next();
        } catch (err) {
          if (!raw || !args) throw err;
          iterator = this.#iterator = await throughEnvelope(await this.#envelope(args), { error: err }, raw);
          raw = undefined;
          continue;
        }
        if (step.done) break;
        if (raw && args) {
          // A result the sink did not take: from here on through an envelope, as Yoga's stream would be.
          iterator = this.#iterator = await throughEnvelope(await this.#envelope(args), { value: step.value }, raw);
          raw = undefined;
          continue;
        }
        this.#write(sharedSseEvent(step.value) ?? encoder.encode(`event: next\ndata: ${stringify(step.value)}\n\n`), true);
      }
      this.#write(COMPLETE, true);
      this.#write(null, true);
    } catch {
      this.res.destroy(); // as a failing web stream ends Yoga's response
    }
  }

  /** A fresh envelope for the caller of `args` (no request of its own: none is held). */
  async #envelope(args: ExecutionArgs): Promise<Envelope> {
    const { subscribe, contextFactory } = this.yoga.getEnveloped({ caller: (args.contextValue as GraphQLContext).caller });
    return envelopeOf(subscribe, { ...args, contextValue: await contextFactory() });
  }

  /** Writes `bytes` (null: ends the response); one that is behind skips what is not `must`. */
  #write(bytes: Uint8Array | null, must: boolean): void {
    if (this.#pending) return void this.#pending.push(bytes);
    if (this.#closed || this.res.writableEnded) return;
    if (bytes === null) {
      pinged.delete(this);
      this.res.end();
    } else if (must || this.res.writableLength <= MAX_BEHIND_BYTES) this.#send(bytes);
  }

  /**
   * `res.write`, flushed now. Node's corks the socket until the next tick (a chunk is its size,
   * CRLF, the data, CRLF), so every stream of a frame's loop would go out after the whole loop;
   * corked here first, the chunk goes out at once in one writev, and no tick is queued per stream.
   */
  #send(bytes: Uint8Array): void {
    const socket = this.res.socket;
    socket?.cork();
    this.res.write(bytes);
    socket?.uncork();
  }

  /** The keep-alive comment, unless the stream is backed up. */
  ping(): void {
    if (this.res.writableLength === 0) this.#send(PING);
  }
}
