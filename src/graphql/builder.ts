/**
 * The Pothos schema builder: plugins, scalars and defaults, no types. Each type lives in its own
 * file under `schema/` with its own fields (the layout of Pothos' complex-app example).
 */
import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import ErrorsPlugin from '@pothos/plugin-errors';
import RelayPlugin from '@pothos/plugin-relay';
import { GraphQLError, Kind, type ValueNode } from 'graphql';
import { GraphQLUpload, type FileUpload } from 'graphql-upload-minimal';
import type { GraphQLContext } from './context.js';

/** The one builder every type file registers on. */
export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  // Non-null unless a field says otherwise, as the contract reads (Pothos defaults to nullable).
  DefaultFieldNullability: false;
  DefaultEdgesNullability: { list: false; items: false };
  DefaultNodeNullability: false;
  Scalars: {
    ID: { Input: string; Output: string };
    Upload: { Input: Promise<FileUpload>; Output: never };
    DateTime: { Input: Date; Output: Date | string };
    Seed: { Input: number; Output: number };
  };
}>({
  // The errors plugin must come before the dataloader plugin (Pothos docs, "With the dataloader plugin").
  plugins: [ErrorsPlugin, RelayPlugin, DataloaderPlugin],
  defaultFieldNullability: false,
  errors: {
    // Only the error types a field lists become data; anything else is thrown and masked by Yoga.
    defaultTypes: [],
  },
  relay: {
    // Raw task ids, no global ids: REST and GraphQL ids stay the same, and no Node interface is needed.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    edgesFieldOptions: { nullable: { list: false, items: false } },
    nodeFieldOptions: { nullable: false },
  },
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

// graphql-upload-minimal's scalar: its value is a promise of the file, streamed while the resolver runs.
builder.addScalarType('Upload', GraphQLUpload);

builder.scalarType('DateTime', {
  description: 'A date and time in ISO 8601, e.g. "2026-11-28T10:15:30.000Z".',
  serialize: (value) => {
    const date = value instanceof Date ? value : new Date(value);
    if (Number.isNaN(date.getTime())) throw new GraphQLError(`DateTime cannot represent ${JSON.stringify(value)}`);
    return date.toISOString();
  },
  parseValue: (value) => parseDateTime(value),
  parseLiteral: (ast) => parseDateTime(ast.kind === Kind.STRING ? ast.value : undefined),
});

const SEED_MESSAGE = `Seed must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER} (2^53-1), sent as a JSON number`;

builder.scalarType('Seed', {
  description: `A random seed: a whole number from 0 to ${Number.MAX_SAFE_INTEGER} (2^53-1), sent and returned as a JSON number.`,
  serialize: (value) => checkSeed(value),
  parseValue: (value) => checkSeed(value),
  parseLiteral: (ast) => checkSeed(seedLiteral(ast)),
});

function checkSeed(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new GraphQLError(`${SEED_MESSAGE}; got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

function seedLiteral(ast: ValueNode): unknown {
  // An IntValue may hold more digits than an Int fits: read it as a number and let checkSeed judge it.
  if (ast.kind === Kind.INT || ast.kind === Kind.FLOAT) return Number(ast.value);
  if (ast.kind === Kind.STRING || ast.kind === Kind.BOOLEAN || ast.kind === Kind.ENUM) return ast.value;
  return null;
}

function parseDateTime(value: unknown): Date {
  const date = typeof value === 'string' ? new Date(value) : undefined;
  if (!date || Number.isNaN(date.getTime())) throw new GraphQLError('DateTime must be an ISO 8601 string, e.g. "2026-11-28T10:15:30Z"');
  return date;
}
