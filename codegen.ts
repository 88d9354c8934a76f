/**
 * GraphQL Code Generator: the typed documents of the SDK package (packages/sdk/src/gql/) are generated
 * from the checked-in schema.graphql (no running server needed) and the operations in packages/sdk/src/.
 */
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: './schema.graphql',
  documents: ['packages/sdk/src/**/*.ts', '!packages/sdk/src/gql/**'],
  // NodeNext ESM: generated relative imports need their extension.
  importExtension: '.js',
  generates: {
    './packages/sdk/src/gql/': {
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
