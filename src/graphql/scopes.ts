/**
 * Scopes per field: `generate` for `generate` and `cancelTask`, `read` for `task`, `tasks` and
 * `taskProgress` (an admin key holds both). A key without the scope gets a GraphQL error with
 * `extensions.code` FORBIDDEN naming it; the field is not resolved.
 */
import { GraphQLError } from 'graphql';
import { Authenticator } from '../auth/authenticator.js';
import type { KeyScope } from '../db/types.js';
import type { GraphQLContext } from './context.js';

/** Throws FORBIDDEN unless the caller of `ctx` holds `scope`. */
export function requireScope(ctx: GraphQLContext, scope: KeyScope): void {
  const lacking = Authenticator.lacks(ctx.caller, scope);
  if (lacking) throw new GraphQLError(lacking, { extensions: { code: 'FORBIDDEN', scope } });
}

/** `resolve` (or `subscribe`) that first checks `scope`: keeps resolvers free of the check. */
export function withScope<P, A, R>(scope: KeyScope, resolve: (parent: P, args: A, ctx: GraphQLContext) => R): (parent: P, args: A, ctx: GraphQLContext) => R {
  return (parent, args, ctx) => {
    requireScope(ctx, scope);
    return resolve(parent, args, ctx);
  };
}
