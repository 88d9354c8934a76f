/**
 * One execution per event and group of subscribers. Every subscriber keeps its own source stream
 * (the subscribe resolver runs per subscriber: its scope and ownership checks, its own snapshot
 * first, its own completion and errors), but an event object that reaches several subscribers of the
 * same group (shared-group-key.ts: same operation, same caller as far as results go) is executed
 * once: the bus hands the same frame object to every listener, so the result is cached on that
 * object (a WeakMap, gone with the frame) and marked shared, to be serialised once
 * (shared-payload.ts). A late subscriber's snapshot is its own object, executed for it alone.
 *
 * When the transport offers a sink (live-sink.ts: graphql-ws and SSE do) and the source is a task's
 * watch, the frames skip the per-subscriber iterators altogether: the watch hands each frame over
 * synchronously and the sink writes the shared payload to the connection (direct-subscriber.ts).
 */
import { createSourceEventStream, execute, getOperationAST, GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { TaskWatch } from '../tasks/task-watch.js';
import type { GraphQLContext } from './context.js';
import { directSubscriber, type DirectResults } from './direct-subscriber.js';
import type { LiveSink } from './live-sink.js';
import { markShared } from './shared-payload.js';
import { sharedGroupKey } from './shared-group-key.js';

type MaybePromise<T> = T | Promise<T>;

/** Results per event object and group key, for one server. */
type ResultCache = WeakMap<object, Map<string, MaybePromise<ExecutionResult>>>;

/**
 * The plugin: subscriptions of the same group share each event's execution and its result object
 * (on graphql-ws, which runs Yoga's envelop, and on SSE alike). Per server: results never cross servers.
 */
export function useSharedExecution(): Plugin {
  const cache: ResultCache = new WeakMap();
  return {
    onContextBuilding({ extendContext }) {
      // Yoga types the extension as its own fields; a symbol key is not one of them, nor meant to be.
      extendContext({ [RESULTS]: cache } as Parameters<typeof extendContext>[0]);
    },
    onSubscribe({ subscribeFn, setSubscribeFn }) {
      // subscribeFn is Yoga's engine, kept for what is not shared: same errors, same shapes.
      setSubscribeFn((args: ExecutionArgs) => sharedSubscribe(args, cache, subscribeFn as (args: ExecutionArgs) => unknown));
    },
  };
}

/**
 * Put in a context by a transport that subscribed on its own (subscribeDirect, ws-direct-operation.ts):
 * the source it got (answered here as a fresh one would be), or results to hand on unchanged, so
 * that only the envelope's result hooks (masking) run on them.
 */
export interface Presubscribed {
  source?: unknown;
  results?: AsyncIterable<ExecutionResult>;
}

/** Where the plugin puts its cache in every context, for subscribeDirect. */
const RESULTS = Symbol('shared results');

/** graphql's subscribe with the per-event execution shared through `cache`. */
async function sharedSubscribe(args: ExecutionArgs, cache: ResultCache, engine: (args: ExecutionArgs) => unknown): Promise<unknown> {
  const pre = (args.contextValue as { presubscribed?: Presubscribed } | undefined)?.presubscribed;
  if (pre?.results) return pre.results;
  const key = sharedGroupKey(args);
  if (key === undefined) return engine(args);
  const source = pre && 'source' in pre ? (pre.source as Awaited<ReturnType<typeof createSourceEventStream>>) : await createSourceEventStream(args);
  if (!isAsyncIterable(source)) {
    // Errors before any resolver ran (variables): the engine's own answer (it adds the HTTP status
    // and code); nothing was subscribed, so asking it again has no side effect.
    if (source.errors?.some((e) => e.path === undefined)) return engine(args);
    return source; // the resolver's error (NOT_FOUND, FORBIDDEN), located as the engine locates it
  }
  const sink = (args.contextValue as { liveSink?: LiveSink } | undefined)?.liveSink;
  if (source instanceof TaskWatch && sink?.claim()) {
    const { raw, slim } = direct(source, sink, cache, key, args);
    // Yoga gets a stream that ends at once when the sink consumes the results itself.
    return sink.adopt?.(raw, slim) ? handedOver() : raw;
  }
  return mapEvents(source, (event) => resultFor(cache, key, event, args), wrapErrorOf(args));
}

/** As the engine does: a failing source becomes an error of the operation. */
function wrapErrorOf(args: ExecutionArgs): (err: unknown) => GraphQLError {
  const operation = getOperationAST(args.document, args.operationName);
  return (err) => new GraphQLError(err instanceof Error ? err.message : String(err), { originalError: err instanceof Error ? err : null, nodes: operation ? [operation] : null });
}

/**
 * A watch's frames written through `sink`, for the life of the subscription: its frames are
 * executed with only what resolvers read of the context (context.ts), so the transport's request
 * (for SSE a whatwg Request, its headers and body text) is not held as long as the stream.
 */
function direct(source: TaskWatch, sink: LiveSink, cache: ResultCache, key: string, args: ExecutionArgs): { raw: DirectResults; slim: ExecutionArgs } {
  const { service, publicUrl, signer, caller } = args.contextValue as GraphQLContext;
  const slim: ExecutionArgs = {
    schema: args.schema,
    document: args.document,
    operationName: args.operationName ?? null,
    variableValues: args.variableValues ?? null,
    contextValue: { service, publicUrl, signer, caller } satisfies GraphQLContext,
  };
  return { raw: directSubscriber(source, sink, (frame) => resultFor(cache, key, frame, slim), wrapErrorOf(slim)), slim };
}

/** What Yoga gets for a stream its transport consumes itself (LiveSink.adopt): one that ends at once. */
async function* handedOver(): AsyncGenerator<ExecutionResult, void, void> {}

/**
 * Subscribes `args` (a context this plugin built) without the envelope: when the source is a task's
 * watch and `sink` takes it, `direct` carries what the sink does not take and the end (its results
 * have not been through the envelope's hooks: pass them on as `presubscribed.results`); otherwise
 * `source` is for the envelope's subscribe (`presubscribed.source`); neither when not shareable.
 */
export async function subscribeDirect(args: ExecutionArgs, sink: LiveSink): Promise<{ direct?: DirectResults; presubscribed?: Presubscribed }> {
  const cache = (args.contextValue as { [RESULTS]?: ResultCache } | undefined)?.[RESULTS];
  const key = sharedGroupKey(args);
  if (!cache || key === undefined) return {};
  const source = await createSourceEventStream(args);
  if (!(source instanceof TaskWatch) || !sink.claim()) return { presubscribed: { source } };
  return { direct: direct(source, sink, cache, key, args).raw };
}

/**
 * The result of `event` for group `key`: executed by the first subscriber that reaches it. Called
 * once per subscriber and frame: no closure in it (under tsx each one costs a defineProperty of its
 * name, 1 ms of a 1200-subscriber frame in the fan-out bench's profile).
 */
function resultFor(cache: ResultCache, key: string, event: unknown, args: ExecutionArgs): MaybePromise<ExecutionResult> {
  if (typeof event !== 'object' || event === null) return executeOn(args, event); // not a WeakMap key; never a frame
  let byGroup = cache.get(event);
  if (!byGroup) cache.set(event, (byGroup = new Map()));
  let result = byGroup.get(key);
  if (result === undefined) {
    const executed = executeOn(args, event);
    result = executed instanceof Promise ? executed.then(share) : share(executed);
    byGroup.set(key, result);
  }
  return result;
}

function executeOn(args: ExecutionArgs, event: unknown): MaybePromise<ExecutionResult> {
  return execute({ ...args, rootValue: event });
}

function share(result: ExecutionResult): ExecutionResult {
  markShared(result);
  return result;
}

/**
 * `source` with every event mapped through `map`: an async generator's protocol (graphql-ws and
 * Yoga call `return()` when a client leaves, which closes that subscriber's source only).
 */
function mapEvents<T>(
  source: AsyncIterable<unknown>,
  map: (event: unknown) => MaybePromise<T>,
  wrapError: (err: unknown) => GraphQLError,
): AsyncGenerator<T, void, void> {
  const iterator = source[Symbol.asyncIterator]();
  const done = (): IteratorReturnResult<void> => ({ value: undefined, done: true });
  const mapped: AsyncGenerator<T, void, void> = {
    async next() {
      let step: IteratorResult<unknown>;
      try {
        step = await iterator.next();
      } catch (err) {
        throw wrapError(err);
      }
      if (step.done) return done();
      return { value: await map(step.value), done: false };
    },
    async return() {
      await iterator.return?.();
      return done();
    },
    async throw(err: unknown) {
      if (iterator.throw) await iterator.throw(err);
      throw err;
    },
    [Symbol.asyncIterator]() {
      return mapped;
    },
    // (AsyncGenerator's type also lists Symbol.asyncDispose, which nothing here calls.)
  } as AsyncGenerator<T, void, void>;
  return mapped;
}
