/**
 * GraphQL Code Generator: the typed SDK in src/sdk/gql/ is generated from the checked-in
 * schema.graphql (no running server needed) and the operations in src/sdk/.
 */
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: './schema.graphql',
  documents: ['src/sdk/**/*.ts', '!src/sdk/gql/**'],
  // NodeNext ESM: generated relative imports need their extension.
  importExtension: '.js',
  generates: {
    './src/sdk/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false, persistedDocuments: true },
      config: {
        documentMode: 'string',
        useTypeImports: true,
        strictScalars: true,
        scalars: {
          ID: 'string',
          DateTime: 'string',
          Seed: 'number',
          Upload: { input: 'File | Blob', output: 'never' },
        },
      },
    },
  },
};

export default config;
