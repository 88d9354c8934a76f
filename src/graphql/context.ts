/**
 * What every resolver gets. Built per request (per operation over WebSocket), so per-request
 * DataLoaders keyed on it never share a cache between requests.
 */
import type { TaskService } from '../tasks/task-service.js';

/** The context of every resolver. */
export interface GraphQLContext {
  /** The service layer: resolvers call only this. */
  service: TaskService;
  /** Base of absolute image URLs (PUBLIC_URL); undefined gives relative URLs. */
  publicUrl: string | undefined;
}

/** The Yoga `context` factory: a fresh object per request. */
export function createContextFactory(options: GraphQLContext): () => GraphQLContext {
  return () => ({ service: options.service, publicUrl: options.publicUrl });
}
