/**
 * One subscriber of a shared graphql-ws group (ws-shared-subscriptions.ts): its socket and
 * operation id, its sink (live-sink.ts: shared results written straight to the socket), and the
 * operation's run, which answers as graphql-ws's own does: the result's `next` then `complete`
 * for an operation that failed before it streamed (NOT_FOUND, FORBIDDEN, bad variables), a `next`
 * for each result the sink did not take, `error` when the stream throws, `complete` at its end
 * unless the client completed it. It sits in graphql-ws's table of the connection's operations as
 * an async generator (what graphql-ws calls `return()` on for a `complete` or a close).
 */
import { GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { isAsyncIterable } from 'graphql-yoga';
import { WsSink } from './live-sink.js';
import { envelopeOf, throughEnvelope } from './enveloped-results.js';
import { subscribeDirect } from './shared-execution.js';

/** graphql-ws's operations of one connection, by id (null while its own are being set up). */
export type OperationTable = Record<string, unknown>;

const done = (): IteratorReturnResult<undefined> => ({ value: undefined, done: true });

/** See the file comment. */
export class DirectOperation extends WsSink {
  /** The operation's result stream once subscribed; `return()` ends it. */
  #results: AsyncIterator<ExecutionResult> | undefined;

  constructor(
    socket: WsSink['socket'],
    readonly id: string,
  ) {
    super(socket, id);
  }

  /**
   * Subscribes with `args` and answers until the stream ends, then calls `ended` (with the error when
   * the answering failed unexpectedly: ws.ts then closes the socket with 4500). A task's watch is
   * subscribed without Yoga's envelope (shared-execution.ts's subscribeDirect: its per-operation
   * wrappers would be most of a subscriber's memory); what its sink does not take, and anything else,
   * goes through `subscribe` (Yoga's enveloped subscribe: masking, bounded messages) as before.
   * `ctx`: the connection's table; the operation is over for the client once it is no longer there.
   * Resolves once subscribed: until the stream carries something (most never do before their last
   * frame) a directly written subscriber waits as a callback in its watch, not as pending promises.
   */
  async start(ctx: { subscriptions: OperationTable }, args: ExecutionArgs, subscribe: (args: ExecutionArgs) => unknown, ended: (error?: unknown) => void): Promise<void> {
    const fail = (err: unknown) => ended(err ?? new Error('the subscription failed'));
    let first: Awaited<ReturnType<typeof subscribeDirect>>;
    try {
      first = await subscribeDirect(args, this);
    } catch (err) {
      if (this.#here(ctx)) delete ctx.subscriptions[this.id];
      return fail(err);
    }
    const endAfter = (work: Promise<unknown>): void => void work.then(() => ended(), fail);
    const answer = (): void => endAfter(this.#answer(ctx, args, subscribe, first));
    const raw = first.direct;
    if (!raw) return answer();
    // Completed by the client while subscribing.
    if (!this.#here(ctx)) return endAfter(raw.return());
    this.#results = raw;
    raw.whenReady(answer);
  }

  /** The operation's answer from `first` on (see start). */
  async #answer(
    ctx: { subscriptions: OperationTable },
    args: ExecutionArgs,
    subscribe: (args: ExecutionArgs) => unknown,
    first: Awaited<ReturnType<typeof subscribeDirect>>,
  ): Promise<void> {
    try {
      let raw = first.direct; // results that have not been through the envelope yet
      let results: AsyncIterator<ExecutionResult>;
      if (raw) results = raw;
      else {
        const result = (await (first.presubscribed ? envelopeOf(subscribe, args)(first.presubscribed) : subscribe(args))) as ExecutionResult | AsyncIterable<ExecutionResult>;
        if (!isAsyncIterable(result)) {
          if (this.#here(ctx)) this.#next(result);
          if (this.#here(ctx)) this.#send({ id: this.id, type: 'complete' });
          return;
        }
        results = result[Symbol.asyncIterator]();
      }
      if (!this.#here(ctx)) return void (await results.return?.());
      this.#results ??= results;
      try {
        for (;;) {
          let step: IteratorResult<ExecutionResult>;
          try {
            step = await results.next();
          } catch (err) {
            if (!raw) throw err;
            results = this.#results = await throughEnvelope(envelopeOf(subscribe, args), { error: err }, raw);
            raw = undefined;
            continue;
          }
          if (step.done) break;
          if (raw) {
            // The first result the sink did not take: from here on through the envelope, in order.
            results = this.#results = await throughEnvelope(envelopeOf(subscribe, args), { value: step.value }, raw);
            raw = undefined;
            continue;
          }
          this.#next(step.value);
        }
      } catch (err) {
        // As graphql-ws: the failure's message as the operation's error, no complete after it.
        const originalError = err instanceof Error ? err : new Error(String(err));
        if (this.#here(ctx)) this.#send({ id: this.id, type: 'error', payload: [new GraphQLError(originalError.message, { originalError }).toJSON()] });
        if (this.#here(ctx)) delete ctx.subscriptions[this.id];
      }
      if (this.#here(ctx)) this.#send({ id: this.id, type: 'complete' });
    } finally {
      if (this.#here(ctx)) delete ctx.subscriptions[this.id];
    }
  }

  /** Whether the operation is still the client's (graphql-ws removes it on `complete` and close). */
  #here(ctx: { subscriptions: OperationTable }): boolean {
    return ctx.subscriptions[this.id] === this;
  }

  /** A result the sink did not take, as graphql-ws writes a `next` (errors by their toJSON). */
  #next(result: ExecutionResult): void {
    if (this.write(result, true)) return;
    const { errors, ...rest } = result;
    this.#send({ id: this.id, type: 'next', payload: errors ? { ...rest, errors: errors.map((e) => e.toJSON()) } : rest });
  }

  #send(message: object): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** graphql-ws's `complete` and close: ends the stream (the run then ends without a `complete`). */
  async return(): Promise<IteratorReturnResult<undefined>> {
    const results = this.#results;
    this.#results = undefined;
    await results?.return?.();
    return done();
  }

  /** What makes graphql-ws see an async generator (it calls only `return`). */
  [Symbol.asyncIterator](): this {
    return this;
  }
}

