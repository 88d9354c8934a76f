/**
 * GraphQL over WebSocket (`graphql-transport-ws`, graphql-ws) on the HTTP server's port and Yoga's
 * path, running every operation through Yoga's envelop (context, armor limits, error masking).
 *
 * The upgrade is ours, not ws' own `server` option: the request guard (Origin, Host) and the cap on
 * live connections answer with a plain HTTP status *before* the handshake, so a refused page never
 * holds a socket. The glue between ws and graphql-ws's `makeServer` is ours too (it replaces
 * `graphql-ws/use/ws`), so a socket error is one warn line in our log, not a stack on the console.
 *
 * The API key comes in the `connection_init` payload (a browser's WebSocket cannot send headers):
 * once keys exist, a missing, wrong or revoked one closes the socket with 4401 right there. The caller
 * is fixed for the connection; a key revoked later ends with the connection.
 *
 * Unlike the recipe in Yoga's docs, `onSubscribe` never throws: graphql-ws answers a throw by closing
 * the whole socket (4500), which would end every other subscription on it. A bad document, a
 * rejected limit or one subscription too many fails only its own operation.
 */
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, type ExecutionArgs, type execute, type subscribe } from 'graphql';
import { CloseCode, handleProtocols, makeServer } from 'graphql-ws';
import { WebSocketServer, type WebSocket } from 'ws';
import { presentedKey } from '../auth/api-key.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { Caller } from '../auth/caller.js';
import { graphqlRefusalBody, type RequestGuard } from '../http/request-guard.js';
import { silentLogger, type Logger } from '../log.js';
import { keepAliveRounds } from './keep-alive.js';
import { LiveConnections } from './live-connections.js';
import { WsSink } from './live-sink.js';
import { sharedJson } from './shared-payload.js';
import { rememberWire } from './ws-next-frames.js';
import { SharedSubscriptions, type ConnectionState } from './ws-shared-subscriptions.js';
import type { GraphQLServer } from './yoga.js';

/** Options of {@link attachGraphQLWs}. */
export interface GraphQLWsOptions {
  /** The Yoga instance whose schema, context and plugins every operation uses. */
  yoga: GraphQLServer;
  /** Who a connection is, from the key in its `connection_init` payload. */
  auth: Authenticator;
  /** Path of the upgrade requests. @default yoga.graphqlEndpoint ('/graphql') */
  path?: string;
  /** Decides on Origin and Host before the handshake; a refusal is answered with its HTTP status (403/421). @default none (all pass) */
  guard?: RequestGuard;
  /** False while the service starts (recovery has not run): an upgrade then gets HTTP 503. @default always true */
  accepting?: () => boolean;
  /** The cap shared with SSE streams; at the cap an upgrade gets HTTP 503. @default its own counter of 10_000 */
  live?: LiveConnections;
  /** Operations in flight at once on one socket (MAX_SUBSCRIPTIONS_PER_SOCKET); the next one gets an error. @default 100 */
  maxSubscriptionsPerSocket?: number;
  /** Where a socket's error (an oversized message, a protocol violation) is reported, once per socket. @default silentLogger */
  log?: Logger;
  /** Largest incoming message in bytes; a larger one closes the socket with 1009. @default 65536 (ws' own default is 100 MiB) */
  maxPayload?: number;
  /** Interval of the server's pings; a socket without a pong within it is terminated. @default 12_000 */
  keepAlive?: number;
  /** Time a client has to send `connection_init` before the socket is closed with 4408. @default 3_000 */
  connectionInitWaitTimeout?: number;
}

/** The running WebSocket side. */
export interface GraphQLWsServer {
  wss: WebSocketServer;
  /**
   * Completes every subscription, closes every socket (1001; one that has not closed after a second
   * is terminated) and the WebSocketServer. Call before closing the HTTP server.
   */
  dispose(): Promise<void>;
}

/** What graphql-ws hands to every hook besides its own context. */
interface Extra {
  socket: WebSocket;
  /** The upgrade request; let go once the connection is accepted (a subscriber need not hold its headers). */
  request: IncomingMessage | undefined;
  /** Who the connection is: set once at `connection_init`, used by every operation on it. */
  caller?: Caller;
  /** graphql-ws's state of the connection, once it is accepted: shared subscriptions enter theirs in it. */
  state?: ConnectionState;
  /** Closes the socket (4408) unless `connection_init` comes first; cleared when it does. */
  initWait?: NodeJS.Timeout;
}

/** Close code for a missing, wrong or revoked key at `connection_init` (graphql-ws' Unauthorized). */
export const UNAUTHORIZED_CLOSE = 4401;

/** The close reason for no key (a close reason holds at most 123 bytes). */
const MISSING_KEY = 'An API key is required: send {"authorization": "Bearer <key>"} in connection_init';

/** What `onSubscribe` puts in `rootValue`: Yoga's enveloped execute and subscribe for that operation. */
interface EnvelopedRoot {
  execute: typeof execute;
  subscribe: typeof subscribe;
}

/** Serves graphql-ws on `server` at the GraphQL path. */
export function attachGraphQLWs(server: Server, options: GraphQLWsOptions): GraphQLWsServer {
  const { yoga } = options;
  const path = options.path ?? yoga.graphqlEndpoint;
  const log = options.log ?? silentLogger;
  const live = options.live ?? new LiveConnections();
  const maxSubscriptions = options.maxSubscriptionsPerSocket ?? 100;
  const keepAlive = options.keepAlive ?? 12_000;
  // A shared result's JSON (shared-payload.ts), taken by the replacer while graphql-ws stringifies a
  // `next` message and spliced in by `send`, which graphql-ws calls right after, synchronously.
  let splice: string | undefined;
  // Shareable subscriptions skip graphql-ws's per-operation machinery (ws-shared-subscriptions.ts).
  const shared = new SharedSubscriptions(yoga, maxSubscriptions);
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload ?? 64 * 1024, handleProtocols: (protocols) => handleProtocols(protocols) });
  const initWaitMs = options.connectionInitWaitTimeout ?? 3_000;
  const graphqlWs = makeServer<Record<string, unknown> | undefined, Extra>({
    // Ours instead (Connection): graphql-ws keeps its timer, fired or not, until the socket closes.
    connectionInitWaitTimeout: 0,
    onConnect: async (ctx) => {
      clearTimeout(ctx.extra.initWait);
      ctx.extra.initWait = undefined;
      const result = await options.auth.authenticate(keyOfConnection(ctx.connectionParams));
      if (!result.ok) {
        // graphql-ws would close with 4403 on `false`; this close comes first, so the client sees 4401.
        ctx.extra.socket.close(UNAUTHORIZED_CLOSE, result.failure === 'missing' ? MISSING_KEY : result.message);
        return false;
      }
      ctx.extra.caller = result.caller;
      ctx.extra.request = undefined;
      // graphql-ws types its table narrower than what it accepts (it only calls `return` on an entry).
      ctx.extra.state = ctx as unknown as ConnectionState;
      return true;
    },
    // A shared result goes to graphql-ws unchanged (its default copies it), to be known by the replacer.
    onNext: (_ctx, _id, _payload, _args, result) => (sharedJson(result) !== undefined ? result : undefined),
    jsonMessageReplacer(this: unknown, key: string, value: unknown) {
      if (key !== 'payload' || (this as { type?: unknown }).type !== 'next') return value;
      splice = sharedJson(value);
      return splice === undefined ? value : null;
    },
    execute: (args: ExecutionArgs) => (args.rootValue as EnvelopedRoot).execute(args),
    subscribe: (args: ExecutionArgs) => (args.rootValue as EnvelopedRoot).subscribe(args),
    onSubscribe: async (ctx, id, payload) => {
      // graphql-ws has already entered this operation in ctx.subscriptions.
      if (Object.keys(ctx.subscriptions).length > maxSubscriptions) {
        return [
          new GraphQLError(`Too many operations on this socket (at most ${maxSubscriptions}, MAX_SUBSCRIPTIONS_PER_SOCKET); complete one first`, {
            extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' },
          }),
        ];
      }
      const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        ...ctx,
        caller: ctx.extra.caller,
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        params: payload,
        // Shared results of this operation may be written straight to the socket (direct-subscriber.ts).
        liveSink: new WsSink(ctx.extra.socket, id),
      });
      let document;
      try {
        document = parse(payload.query);
        // graphql-armor's rules throw from validate rather than report.
        const errors = validate(schema, document);
        if (errors.length > 0) return errors.map(ownGraphQLError);
      } catch (err) {
        return [ownGraphQLError(err)];
      }
      const args: ExecutionArgs = {
        schema,
        document,
        operationName: payload.operationName ?? null,
        variableValues: payload.variables ?? null,
        contextValue: await contextFactory(),
        rootValue: { execute, subscribe } satisfies EnvelopedRoot,
      };
      return args;
    },
  });

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Until ws owns it, a reset by the peer must not become an unhandled 'error'. A function of its
    // own: a closure here would share this scope and keep the upgrade request for the socket's life.
    socket.on('error', destroyOnError);
    if ((request.url ?? '/').split('?', 1)[0] !== path) return refuseUpgrade(socket, 404, { detail: 'Not Found' });
    const refusal = options.guard?.(request);
    if (refusal) return refuseUpgrade(socket, refusal.status, graphqlRefusalBody(refusal));
    if (options.accepting && !options.accepting()) {
      return refuseUpgrade(socket, 503, { errors: [{ message: 'The service is starting; try again in a moment', extensions: { code: 'STARTING' } }] });
    }
    // Counted from here until the TCP socket closes, also when the handshake below fails.
    if (!live.tryHold(socket)) return refuseUpgrade(socket, 503, { errors: [{ message: live.refusal, extensions: { code: 'TOO_MANY_CONNECTIONS' } }] });
    wss.handleUpgrade(request, socket, head, (ws) => {
      rememberWire(ws, socket); // shared `next` messages are written to it directly (ws-next-frames.ts)
      onConnection(ws, request);
    });
  };

  /**
   * graphql-ws's view of one socket. Methods, not closures: under tsx (esbuild's keepNames) every
   * named closure gets its own `name` property, a ~256 B dictionary, and one of these lives per socket.
   */
  class Connection {
    readonly protocol: string;
    readonly extra: Extra;
    #reported = false;

    constructor(readonly socket: WebSocket, request: IncomingMessage) {
      this.protocol = socket.protocol;
      this.extra = { socket, request };
    }

    send(data: string): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        // `{"id":"…","type":"next","payload":null}` with the shared payload in place of null.
        if (splice !== undefined) {
          if (data.endsWith('"payload":null}')) data = `${data.slice(0, -5)}${splice}}`;
          splice = undefined;
        }
        if (this.socket.readyState !== this.socket.OPEN) return resolve();
        this.socket.send(data, (err) => (err ? reject(err) : resolve()));
      });
    }

    close(code: number, reason: string): void {
      this.socket.close(code, reason);
    }

    onMessage(cb: (data: string) => Promise<void>): void {
      this.socket.on('message', (data) => {
        const text = String(data);
        const { state, caller } = this.extra;
        if (state && shared.handle(state, this.socket, caller, text, () => void cb(text).catch((err: unknown) => this.fail(err)), (err) => this.fail(err))) return;
        cb(text).catch((err: unknown) => this.fail(err));
      });
    }

    fail(err: unknown): void {
      log.error('graphql-ws: message handling failed', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      this.socket.close(CloseCode.InternalServerError, 'Internal server error');
    }

    /** A socket error: ws has already sent the close frame (1009 for an oversized message); one line, no stack. */
    error(err: Error & { code?: string }): void {
      if (!this.#reported) log.warn('graphql-ws: socket closed on error', { code: err.code, error: err.message });
      this.#reported = true;
      if (this.socket.readyState === this.socket.OPEN) this.socket.close(CloseCode.InternalServerError, 'Internal server error');
    }
  }

  const onConnection = (socket: WebSocket, request: IncomingMessage) => {
    const connection = new Connection(socket, request);
    if (initWaitMs > 0 && Number.isFinite(initWaitMs)) connection.extra.initWait = setTimeout(closeUninitialised, initWaitMs, socket).unref();
    socket.on('error', (err: Error & { code?: string }) => connection.error(err));
    socket.on('pong', onPong);
    const closed = graphqlWs.opened(connection, connection.extra);
    socket.once('close', (code, reason) => {
      clearTimeout(connection.extra.initWait);
      awaitingPong.delete(socket);
      closed(code, String(reason)).catch((err: unknown) => log.error('graphql-ws: ending subscriptions failed', { error: err instanceof Error ? err.message : String(err) }));
    });
  };

  // One keep-alive for every socket, a batch per turn of the event loop (keep-alive.ts): a socket
  // pinged in the last round that has not answered since is terminated, every open one is pinged.
  const awaitingPong = new Set<WebSocket>();
  function onPong(this: WebSocket) {
    awaitingPong.delete(this);
  }
  const pinger =
    keepAlive > 0 && Number.isFinite(keepAlive)
      ? keepAliveRounds(keepAlive, () => wss.clients, (client) => {
          if (client.readyState !== client.OPEN) return;
          if (awaitingPong.has(client)) {
            awaitingPong.delete(client);
            client.terminate();
            return;
          }
          awaitingPong.add(client);
          client.ping();
        })
      : undefined;

  server.on('upgrade', onUpgrade);
  return {
    wss,
    dispose: async () => {
      server.off('upgrade', onUpgrade);
      pinger?.stop();
      for (const client of wss.clients) client.close(1001, 'Going away');
      // A peer that never answers the close frame would hold shutdown for ws' 30 s closing timeout.
      const timer = setTimeout(() => {
        for (const client of wss.clients) client.terminate();
      }, 1000);
      try {
        await new Promise<void>((resolve) => {
          if (wss.clients.size === 0) return resolve();
          const check = () => wss.clients.size === 0 && resolve();
          for (const client of wss.clients) client.once('close', () => setImmediate(check));
        });
        await new Promise<void>((resolve, reject) => wss.close((err) => (err ? reject(err) : resolve())));
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * The key of a `connection_init` payload: `{"authorization": "Bearer <key>"}` (or `{"apiKey": "<key>"}`);
 * see presentedKey. A value that is not a string counts as an unusable key.
 */
function keyOfConnection(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  const authorization = params?.['authorization'];
  const apiKey = params?.['apiKey'];
  if ((authorization !== undefined && typeof authorization !== 'string') || (apiKey !== undefined && typeof apiKey !== 'string')) return '';
  return presentedKey(authorization, apiKey);
}

/** A socket whose `connection_init` did not come in time, closed as graphql-ws closes it. */
function closeUninitialised(socket: WebSocket): void {
  socket.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
}

/** The upgrade socket's 'error' listener until ws owns it: the socket is gone. */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** Answers an upgrade request with a plain HTTP status and a JSON body, and closes the connection. */
function refuseUpgrade(socket: Duplex, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
      `${status === 503 ? 'Retry-After: 5\r\n' : ''}Connection: close\r\n\r\n${text}`,
  );
}

/**
 * graphql-ws accepts only GraphQLErrors of its own graphql copy; an error from elsewhere (another
 * copy of graphql, or a plain Error) would make it close the socket.
 */
function ownGraphQLError(err: unknown): GraphQLError {
  if (err instanceof GraphQLError) return err;
  const e = err as { message?: unknown; extensions?: unknown; nodes?: unknown };
  if (typeof e.message === 'string' && 'extensions' in e) {
    return new GraphQLError(e.message, { extensions: e.extensions as Record<string, unknown> });
  }
  return new GraphQLError('Invalid document');
}
