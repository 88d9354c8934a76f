/**
 * The Yoga server for `/graphql`: HTTP POST/GET, GraphQL multipart uploads (streamed), SSE for
 * subscriptions (`Accept: text/event-stream`), GraphiQL in a browser, and the security defaults
 * Yoga does not have on its own (CSRF prevention, strict CORS, query limits), and API keys
 * (use-api-keys.ts; the GraphiQL page stays public). graphql-ws on the same path is in `ws.ts`.
 * Subscribers of the same operation and caller share each frame's execution and payload
 * (shared-execution.ts, shared-sse.ts).
 */
import { EnvelopArmor } from '@escape.tech/graphql-armor';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { createYoga, type GraphiQLOptions, type YogaLogger } from 'graphql-yoga';
import type { Authenticator, AuthMode } from '../auth/authenticator.js';
import type { UrlSigner } from '../auth/url-signer.js';
import { originAllowed } from '../http/request-guard.js';
import { silentLogger, type Logger } from '../log.js';
import type { TaskService } from '../tasks/task-service.js';
import { createContextFactory, type GraphQLContext } from './context.js';
import type { GraphQLServer } from './graphql-server.js';
import { createGraphiQL } from './graphiql.js';
import { schema } from './schema/index.js';
import { useSharedExecution } from './shared-execution.js';
import { useSharedSse } from './shared-sse.js';
import { useApiKeys } from './use-api-keys.js';
import { useBoundedErrorMessages } from './use-bounded-error-messages.js';
import { useBodyLimits } from './use-body-limits.js';
import { useStreamingUploads } from './use-streaming-uploads.js';

/** Options of {@link createGraphQLServer}. */
export interface GraphQLServerOptions {
  service: TaskService;
  /** Largest reference image in bytes (MAX_FILE_SIZE). */
  maxFileSize: number;
  /** Base of absolute image URLs (PUBLIC_URL). @default undefined (relative URLs) */
  publicUrl: string | undefined;
  /**
   * Browser origins answered with CORS headers besides the service's own (CORS_ORIGINS); `'*'` any.
   * Never with credentials. Other origins are refused before Yoga by the request guard. @default []
   */
  corsOrigins: string[] | '*';
  /** Serve GraphiQL on GET /graphql in a browser (GRAPHIQL), its assets under /graphql/graphiql/. @default true */
  graphiql?: boolean;
  /** Where Yoga's own lines go, unexpected (masked) errors with their stack included. @default silentLogger */
  log?: Logger;
  /** Who a request is, from its API key (everyone, while no key exists). */
  auth: Authenticator;
  /** Signs the image URLs handed out once keys exist. */
  signer: UrlSigner;
}

/** The path of every GraphQL transport. */
export const GRAPHQL_PATH = '/graphql';

/** Room for the multipart `operations` and `map` fields and part headers next to the file. */
const BODY_OVERHEAD = 128 * 1024;

/** Query limits (graphql-armor): generous for the SDK and GraphiQL, small enough to stop abuse. */
export const QUERY_LIMITS = { maxDepth: 10, maxAliases: 15, maxCost: 5000, maxTokens: 2000 } as const;

/** The Yoga instance: a Node request handler (`yoga(req, res)`) with `getEnveloped` for graphql-ws. */
export type { GraphQLServer };

/** Builds the Yoga instance (mount it for every path under {@link GRAPHQL_PATH}). */
export function createGraphQLServer(options: GraphQLServerOptions): GraphQLServer {
  const armor = new EnvelopArmor({
    maxDepth: { n: QUERY_LIMITS.maxDepth },
    maxAliases: { n: QUERY_LIMITS.maxAliases },
    costLimit: { maxCost: QUERY_LIMITS.maxCost },
    maxTokens: { n: QUERY_LIMITS.maxTokens },
  });
  const graphiql = options.graphiql === false ? undefined : createGraphiQL({ basePath: `${GRAPHQL_PATH}/graphiql` });
  const cors = { publicUrl: options.publicUrl, corsOrigins: options.corsOrigins };
  return createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    context: createContextFactory({ service: options.service, publicUrl: options.publicUrl, signer: options.signer }),
    // useBodyLimits (in plugins) has a limit per kind of body instead of one sized for images.
    maxRequestBodySize: false,
    // Yoga's default reflects any origin *with* credentials; its origin list echoes any origin when empty
    // and its single entry to everyone. The guard's allow-list decides instead, per request.
    cors: (request) => {
      const origin = request.headers.get('origin');
      if (!origin || !originAllowed(origin, request.headers.get('host') ?? undefined, cors)) return false;
      // ['*'] makes Yoga echo this (allowed) origin, with Vary: Origin.
      return { origin: ['*'], credentials: false, methods: ['GET', 'POST'] };
    },
    // Errors that are not GraphQLErrors reach clients as "Unexpected error." only (Yoga logs the original).
    maskedErrors: true,
    logging: yogaLogger(options.log ?? silentLogger),
    landingPage: false,
    // GraphiQL's scripts and styles served from the installed package, not a CDN: it works on an offline GPU box.
    ...(graphiql && { renderGraphiQL: graphiql.render }),
    graphiql: graphiql ? async () => graphiqlOptions(await options.auth.mode()) : false,
    plugins: [
      // First: its static files need none of the request parsing below.
      ...(graphiql ? [graphiql.plugin] : []),
      // Before anything parses the body: a request without a valid key gets 401, its body thrown away
      // unparsed (up to the largest accepted body, so a client still uploading sees the answer).
      useApiKeys({ auth: options.auth, maxDrainBytes: options.maxFileSize + BODY_OVERHEAD }),
      // Multipart is a CORS "simple" request: without this, any web page could make a visitor's browser upload.
      useCSRFPrevention({ requestHeaders: ['x-graphql-yoga-csrf', 'apollo-require-preflight'] }),
      useStreamingUploads({ maxFileSize: options.maxFileSize + 1, maxFiles: 1 }),
      // After the parsers: it wraps the one chosen. JSON gets 1 MiB, only multipart room for an image.
      useBodyLimits({ maxFileSize: options.maxFileSize, multipartMargin: BODY_OVERHEAD }),
      ...armor.protect().plugins,
      // Error messages quote client input back: never a megabyte of it.
      useBoundedErrorMessages(),
      // Subscribers asking the same thing share each frame's execution and serialisation (graphql-ws
      // and SSE); its subscribe replaces the engine's, so no later plugin may set one.
      useSharedExecution(),
      useSharedSse(),
    ],
  });
}

/**
 * GraphiQL's options: subscriptions over WS while the service is open. Once keys exist, over SSE:
 * GraphiQL's WS client puts nothing of the Headers tab in `connection_init`, while SSE sends its
 * headers like any query; the Headers tab starts with the one to fill in.
 */
function graphiqlOptions(mode: AuthMode): GraphiQLOptions {
  const common = { title: 'Kontext Gateway', defaultQuery: GRAPHIQL_EXAMPLE };
  if (mode === 'open') return { ...common, subscriptionsProtocol: 'WS' };
  return { ...common, subscriptionsProtocol: 'SSE', headers: JSON.stringify({ Authorization: 'Bearer <your API key>' }, null, 2) };
}

/** Yoga's logger interface over ours; its error lines are the masked errors. */
function yogaLogger(log: Logger): YogaLogger {
  const text = (args: unknown[]) =>
    args.map((a) => (a instanceof Error ? (a.stack ?? a.message) : typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
  return {
    debug: (...args: unknown[]) => log.debug(`graphql: ${text(args)}`),
    info: (...args: unknown[]) => log.info(`graphql: ${text(args)}`),
    warn: (...args: unknown[]) => log.warn(`graphql: ${text(args)}`),
    error: (...args: unknown[]) => log.error('graphql: unexpected error', { error: text(args) }),
  };
}

const GRAPHIQL_EXAMPLE = `# Kontext Gateway: FLUX.1 Kontext on ComfyUI.
#
# Once the service has API keys, put yours in the Headers tab below:
#   {"Authorization": "Bearer kx_..."}
#
# 1. Run "RecentTasks" to list tasks (start one with the \`generate\` mutation: it needs a file,
#    so use curl or the SDK; see the README).
# 2. Copy a task id into the variables below ({"taskId": "..."}) and run "WatchTask": the current
#    state first, then every step live until the task finishes.

query RecentTasks {
  tasks(first: 5) {
    edges {
      node {
        id
        status
        progress
        description
        queuePosition
        images { index url width height }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}

subscription WatchTask($taskId: ID!) {
  taskProgress(taskId: $taskId) {
    seq
    status
    progress
    imageIndex
    step
    totalSteps
    queuePosition
    etaSeconds
    image { index url }
    error
  }
}
`;
