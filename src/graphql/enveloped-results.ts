/**
 * Results that skipped Yoga's envelope on the way out (a task's watch written straight to the
 * connection, direct-subscriber.ts) handed back through it once one of them is not a shared result
 * (an error, a late execution): from that one on, the subscription's stream passes the envelope's
 * result hooks (error masking, bounded messages) as any subscription's does, in order.
 */
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import { isAsyncIterable } from 'graphql-yoga';
import type { Presubscribed } from './shared-execution.js';

/** An enveloped subscribe (Yoga's getEnveloped().subscribe) and the arguments to call it with. */
export type Envelope = (presubscribed: Presubscribed) => Promise<unknown>;

/** The envelope of `subscribe` with `args`, the raw results going in as `presubscribed`. */
export function envelopeOf(subscribe: (args: ExecutionArgs) => unknown, args: ExecutionArgs): Envelope {
  return async (presubscribed) => subscribe({ ...args, contextValue: { ...(args.contextValue as object), presubscribed } });
}

/**
 * The stream from here on: `first` (a result, or the error the raw stream threw) and the rest of
 * `raw`, through `envelope`. Its `return()` reaches `raw`.
 */
export async function throughEnvelope(
  envelope: Envelope,
  first: { value: ExecutionResult } | { error: unknown },
  raw: AsyncGenerator<ExecutionResult, void, void>,
): Promise<AsyncIterator<ExecutionResult>> {
  const result = await envelope({ results: 'error' in first ? failing(first.error, raw) : prepend(first.value, raw) });
  // subscribe hands presubscribed results back as a stream; anything else would be a bug there.
  if (!isAsyncIterable(result)) throw new Error('presubscribed results did not come back as a stream');
  return (result as AsyncIterable<ExecutionResult>)[Symbol.asyncIterator]();
}

async function* prepend(first: ExecutionResult, rest: AsyncGenerator<ExecutionResult, void, void>): AsyncGenerator<ExecutionResult, void, void> {
  yield first;
  yield* rest;
}

// eslint-disable-next-line require-yield -- a generator only to be a stream that fails
async function* failing(err: unknown, rest: AsyncGenerator<ExecutionResult, void, void>): AsyncGenerator<ExecutionResult, void, void> {
  await rest.return();
  throw err;
}
