import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // One graphql realm: Vite would otherwise load graphql's ESM build next to the CJS build
    // that Yoga and graphql-ws load, and their GraphQLError classes fail each other's instanceof.
    alias: { graphql: 'graphql/index.js' },
  },
  // Workspace packages (packages/sdk) from their TypeScript sources, never a stale dist/; the rest is
  // Vitest's default for Node (Vite's server conditions without 'module', which breaks @aws-sdk here).
  ssr: { resolve: { conditions: ['@kontext-gateway/source', 'node', 'development|production'] } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Tests start real servers; two cores here, so keep the fan-out modest.
    maxWorkers: 2,
  },
});
