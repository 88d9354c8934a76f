/**
 * What every resolver gets. Built per request (per operation over WebSocket), so per-request
 * DataLoaders keyed on it never share a cache between requests.
 */
import { OPEN_CALLER, type Caller } from '../auth/caller.js';
import type { TaskService } from '../tasks/task-service.js';

/** The context of every resolver. */
export interface GraphQLContext {
  /** The service layer: resolvers call only this. */
  service: TaskService;
  /** Base of absolute image URLs (PUBLIC_URL); undefined gives relative URLs. */
  publicUrl: string | undefined;
  /** Who is asking: the service decides from it what they see. */
  caller: Caller;
}

/** The Yoga `context` factory: a fresh object per request. */
export function createContextFactory(options: Omit<GraphQLContext, 'caller'>): () => GraphQLContext {
  return () => ({ service: options.service, publicUrl: options.publicUrl, caller: OPEN_CALLER });
}
