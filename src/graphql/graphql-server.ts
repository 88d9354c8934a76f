/** The Yoga instance's type, apart from yoga.ts so that its plugins can name it without an import cycle. */
import type { YogaServerInstance } from 'graphql-yoga';
import type { GraphQLContext } from './context.js';

/** The Yoga instance createGraphQLServer (yoga.ts) builds. */
export type GraphQLServer = YogaServerInstance<Record<string, unknown>, GraphQLContext>;
