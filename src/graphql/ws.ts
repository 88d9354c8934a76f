/**
 * GraphQL over WebSocket (`graphql-transport-ws`, graphql-ws) on the HTTP server's port and Yoga's
 * path, running every operation through Yoga's envelop (context, armor limits, error masking).
 *
 * Unlike the recipe in Yoga's docs, `onSubscribe` never throws: graphql-ws answers a throw by closing
 * the whole socket (4500), which would end every other subscription on it. A bad document or a
 * rejected limit fails only its own operation.
 */
import type { IncomingMessage, Server } from 'node:http';
import { GraphQLError, type ExecutionArgs, type execute, type subscribe } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { GraphQLServer } from './yoga.js';

/** Options of {@link attachGraphQLWs}. */
export interface GraphQLWsOptions {
  /** The Yoga instance whose schema, context and plugins every operation uses. */
  yoga: GraphQLServer;
  /** Path of the upgrade requests. @default yoga.graphqlEndpoint ('/graphql') */
  path?: string;
  /**
   * Allowed browser origins. An upgrade whose `Origin` is another one is refused with close code
   * 4403 (cross-site WebSocket hijacking); clients that send no Origin (scripts) pass. Empty allows
   * any origin. @default []
   */
  corsOrigins?: string[];
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

/** What `onSubscribe` puts in `rootValue`: Yoga's enveloped execute and subscribe for that operation. */
interface EnvelopedRoot {
  execute: typeof execute;
  subscribe: typeof subscribe;
}

/** Serves graphql-ws on `server` at the GraphQL path. */
export function attachGraphQLWs(server: Server, options: GraphQLWsOptions): GraphQLWsServer {
  const { yoga } = options;
  const corsOrigins = options.corsOrigins ?? [];
  const wss = new WebSocketServer({ server, path: options.path ?? yoga.graphqlEndpoint, maxPayload: options.maxPayload ?? 64 * 1024 });
  const disposable = useServer(
    {
      connectionInitWaitTimeout: options.connectionInitWaitTimeout ?? 3_000,
      // false closes the socket with 4403 Forbidden.
      onConnect: (ctx) => originAllowed(ctx.extra.request, corsOrigins),
      execute: (args: ExecutionArgs) => (args.rootValue as EnvelopedRoot).execute(args),
      subscribe: (args: ExecutionArgs) => (args.rootValue as EnvelopedRoot).subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
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
    },
    wss,
    options.keepAlive ?? 12_000,
  );
  return {
    wss,
    dispose: async () => {
      const disposed = disposable.dispose();
      // A peer that never answers the close frame would hold shutdown for ws' 30 s closing timeout.
      const timer = setTimeout(() => {
        for (const client of wss.clients) client.terminate();
      }, 1000);
      try {
        await disposed;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

function originAllowed(request: IncomingMessage, allowed: string[]): boolean {
  const origin = request.headers.origin;
  return !origin || allowed.length === 0 || allowed.includes(origin);
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
