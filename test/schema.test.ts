/**
 * schema.graphql is the printed Pothos schema (`npm run schema`), and it keeps every name of the
 * contract clients, the SDK and outside checks rely on (issue "The GraphQL API").
 */
import { readFile } from 'node:fs/promises';
import {
  buildSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isObjectType,
  isUnionType,
  type GraphQLArgument,
  type GraphQLInputField,
  type GraphQLNamedType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { printedSchema } from '../src/graphql/print-schema.js';

/** The contract, verbatim from the issues (QuotaExceededError: issue 12). Fields may be added; none of these may change. */
const CONTRACT = /* GraphQL */ `
  scalar Upload
  scalar DateTime
  scalar Seed
  enum TaskStatus { PENDING PROCESSING COMPLETED FAILED CANCELLED }
  type Image { index: Int!  url: String!  width: Int!  height: Int!  seed: Seed!  contentType: String!  bytes: Int! }
  type Task {
    id: ID!  description: String!  status: TaskStatus!  progress: Int!
    count: Int!  size: String!  steps: Int!  guidance: Float!  seed: Seed!
    images: [Image!]!  error: String  queuePosition: Int  createdAt: DateTime!  updatedAt: DateTime!
  }
  type TaskProgress {
    taskId: ID!  seq: Int!  status: TaskStatus!  progress: Int!
    imageIndex: Int  step: Int  totalSteps: Int  node: String  queuePosition: Int  etaSeconds: Float
    preview: String
    image: Image
    error: String
  }
  input GenerateInput {
    referenceImage: Upload!  description: String!  count: Int = 1  size: String = "1024x1024"
    steps: Int = 20  guidance: Float = 2.5  seed: Seed  idempotencyKey: String
  }
  interface Error { message: String! }
  type ValidationError implements Error { message: String!  field: String! }
  type UploadRejectedError implements Error { message: String!  reason: String! }
  type GenerateSuccess { task: Task! }
  enum QuotaLimit { MAX_CONCURRENT IMAGES_PER_DAY RATE MAX_QUEUED_TASKS }
  type QuotaExceededError implements Error { message: String!  limit: QuotaLimit!  retryAfterSeconds: Int! }
  union GenerateResult = GenerateSuccess | ValidationError | UploadRejectedError | QuotaExceededError
  type PageInfo { hasNextPage: Boolean!  hasPreviousPage: Boolean!  startCursor: String  endCursor: String }
  type TaskEdge { cursor: String!  node: Task! }
  type TaskConnection { edges: [TaskEdge!]!  pageInfo: PageInfo! }
  type Query { task(id: ID!): Task   tasks(first: Int, after: String, status: TaskStatus): TaskConnection! }
  type Mutation { generate(input: GenerateInput!): GenerateResult!   cancelTask(id: ID!): Task }
  type Subscription { taskProgress(taskId: ID!): TaskProgress! }
`;

function argShape(a: GraphQLArgument | GraphQLInputField): string {
  return `${a.name}: ${a.type.toString()}${a.defaultValue === undefined ? '' : ` = ${JSON.stringify(a.defaultValue)}`}`;
}

/** Every name and signature of a type that a client can depend on. */
function shape(type: GraphQLNamedType): string[] {
  if (isObjectType(type) || isInterfaceType(type)) {
    const out = type.getInterfaces().map((i) => `implements ${i.name}`);
    for (const f of Object.values(type.getFields())) {
      out.push(`${f.name}: ${f.type.toString()}`, ...f.args.map((a) => `${f.name}(${argShape(a)})`));
    }
    return out;
  }
  if (isInputObjectType(type)) return Object.values(type.getFields()).map(argShape);
  if (isEnumType(type)) return type.getValues().map((v) => v.name);
  if (isUnionType(type)) return type.getTypes().map((t) => `| ${t.name}`);
  return [type.toString()];
}

describe('schema.graphql', () => {
  it('is the printed Pothos schema (run `npm run schema` after changing src/graphql/schema)', async () => {
    const file = await readFile(new URL('../schema.graphql', import.meta.url), 'utf8');
    expect(file).toBe(printedSchema());
  });

  it('keeps every name and type of the contract', () => {
    const contract = buildSchema(CONTRACT);
    const printed = buildSchema(printedSchema());
    for (const type of Object.values(contract.getTypeMap())) {
      if (type.name.startsWith('__') || ['String', 'Int', 'Float', 'Boolean', 'ID'].includes(type.name)) continue;
      const ours = printed.getType(type.name);
      expect(ours, type.name).toBeDefined();
      expect(ours!.constructor.name, type.name).toBe(type.constructor.name);
      const have = new Set(shape(ours!));
      const missing = shape(type).filter((s) => !have.has(s));
      expect(missing, `${type.name} lost or changed`).toEqual([]);
    }
  });
});
