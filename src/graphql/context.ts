/**
 * What every resolver gets. Built per request (per operation over WebSocket), so per-request
 * DataLoaders keyed on it never share a cache between requests.
 */
import type { Caller } from '../auth/caller.js';
import type { UrlSigner } from '../auth/url-signer.js';
import type { TaskService } from '../tasks/task-service.js';

/** The context of every resolver. */
export interface GraphQLContext {
  /** The service layer: resolvers call only this. */
  service: TaskService;
  /** Base of absolute image URLs (PUBLIC_URL); undefined gives relative URLs. */
  publicUrl: string | undefined;
  /** Signs image URLs handed to a caller with a key (an `<img>` cannot send one). */
  signer: UrlSigner;
  /** Who is asking: the service decides from it what they see. */
  caller: Caller;
}

/**
 * What the transports put in Yoga's initial context: the caller they authenticated (useApiKeys for
 * HTTP and SSE, the connection's over graphql-ws).
 */
export interface AuthenticatedContext {
  caller?: Caller;
}

/**
 * The Yoga `context` factory: a fresh object per request. Fails closed: an operation that reached
 * it without an authenticated caller (a transport that skipped authentication) is an error, never
 * anyone's.
 */
export function createContextFactory(options: Omit<GraphQLContext, 'caller'>): (initial: object) => GraphQLContext {
  return (initial) => {
    // Yoga types its initial context as a record of unknowns; only the transports set `caller`.
    const caller = (initial as AuthenticatedContext).caller;
    if (!caller) throw new Error('GraphQL operation without an authenticated caller');
    return { service: options.service, publicUrl: options.publicUrl, signer: options.signer, caller };
  };
}
