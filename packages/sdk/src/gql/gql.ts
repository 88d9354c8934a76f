/* eslint-disable */
import * as types from './graphql.js';



/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  fragment ImageFields on Image {\n    index\n    url\n    width\n    height\n    seed\n    contentType\n    bytes\n  }\n": typeof types.ImageFieldsFragmentDoc,
    "\n  fragment TaskFields on Task {\n    id\n    description\n    status\n    progress\n    count\n    size\n    steps\n    guidance\n    seed\n    error\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    images {\n      ...ImageFields\n    }\n  }\n": typeof types.TaskFieldsFragmentDoc,
    "\n  mutation Generate($input: GenerateInput!) {\n    generate(input: $input) {\n      __typename\n      ... on GenerateSuccess {\n        task {\n          ...TaskFields\n        }\n      }\n      ... on ValidationError {\n        message\n        field\n      }\n      ... on UploadRejectedError {\n        message\n        reason\n      }\n      ... on QuotaExceededError {\n        message\n        limit\n        retryAfterSeconds\n      }\n    }\n  }\n": typeof types.GenerateDocument,
    "\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskFields\n    }\n  }\n": typeof types.TaskDocument,
    "\n  query Tasks($first: Int, $after: String, $status: TaskStatus) {\n    tasks(first: $first, after: $after, status: $status) {\n      edges {\n        cursor\n        node {\n          ...TaskFields\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n": typeof types.TasksDocument,
    "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskFields\n    }\n  }\n": typeof types.CancelTaskDocument,
    "\n  subscription TaskProgress($taskId: ID!) {\n    taskProgress(taskId: $taskId) {\n      taskId\n      seq\n      status\n      progress\n      imageIndex\n      step\n      totalSteps\n      node\n      queuePosition\n      etaSeconds\n      preview\n      error\n      image {\n        ...ImageFields\n      }\n    }\n  }\n": typeof types.TaskProgressDocument,
};
const documents: Documents = {
    "\n  fragment ImageFields on Image {\n    index\n    url\n    width\n    height\n    seed\n    contentType\n    bytes\n  }\n": types.ImageFieldsFragmentDoc,
    "\n  fragment TaskFields on Task {\n    id\n    description\n    status\n    progress\n    count\n    size\n    steps\n    guidance\n    seed\n    error\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    images {\n      ...ImageFields\n    }\n  }\n": types.TaskFieldsFragmentDoc,
    "\n  mutation Generate($input: GenerateInput!) {\n    generate(input: $input) {\n      __typename\n      ... on GenerateSuccess {\n        task {\n          ...TaskFields\n        }\n      }\n      ... on ValidationError {\n        message\n        field\n      }\n      ... on UploadRejectedError {\n        message\n        reason\n      }\n      ... on QuotaExceededError {\n        message\n        limit\n        retryAfterSeconds\n      }\n    }\n  }\n": types.GenerateDocument,
    "\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskFields\n    }\n  }\n": types.TaskDocument,
    "\n  query Tasks($first: Int, $after: String, $status: TaskStatus) {\n    tasks(first: $first, after: $after, status: $status) {\n      edges {\n        cursor\n        node {\n          ...TaskFields\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n": types.TasksDocument,
    "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskFields\n    }\n  }\n": types.CancelTaskDocument,
    "\n  subscription TaskProgress($taskId: ID!) {\n    taskProgress(taskId: $taskId) {\n      taskId\n      seq\n      status\n      progress\n      imageIndex\n      step\n      totalSteps\n      node\n      queuePosition\n      etaSeconds\n      preview\n      error\n      image {\n        ...ImageFields\n      }\n    }\n  }\n": types.TaskProgressDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment ImageFields on Image {\n    index\n    url\n    width\n    height\n    seed\n    contentType\n    bytes\n  }\n"): typeof import('./graphql.js').ImageFieldsFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment TaskFields on Task {\n    id\n    description\n    status\n    progress\n    count\n    size\n    steps\n    guidance\n    seed\n    error\n    queuePosition\n    createdAt\n    updatedAt\n    startedAt\n    finishedAt\n    images {\n      ...ImageFields\n    }\n  }\n"): typeof import('./graphql.js').TaskFieldsFragmentDoc;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Generate($input: GenerateInput!) {\n    generate(input: $input) {\n      __typename\n      ... on GenerateSuccess {\n        task {\n          ...TaskFields\n        }\n      }\n      ... on ValidationError {\n        message\n        field\n      }\n      ... on UploadRejectedError {\n        message\n        reason\n      }\n      ... on QuotaExceededError {\n        message\n        limit\n        retryAfterSeconds\n      }\n    }\n  }\n"): typeof import('./graphql.js').GenerateDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Task($id: ID!) {\n    task(id: $id) {\n      ...TaskFields\n    }\n  }\n"): typeof import('./graphql.js').TaskDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Tasks($first: Int, $after: String, $status: TaskStatus) {\n    tasks(first: $first, after: $after, status: $status) {\n      edges {\n        cursor\n        node {\n          ...TaskFields\n        }\n      }\n      pageInfo {\n        hasNextPage\n        endCursor\n      }\n    }\n  }\n"): typeof import('./graphql.js').TasksDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CancelTask($id: ID!) {\n    cancelTask(id: $id) {\n      ...TaskFields\n    }\n  }\n"): typeof import('./graphql.js').CancelTaskDocument;
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription TaskProgress($taskId: ID!) {\n    taskProgress(taskId: $taskId) {\n      taskId\n      seq\n      status\n      progress\n      imageIndex\n      step\n      totalSteps\n      node\n      queuePosition\n      etaSeconds\n      preview\n      error\n      image {\n        ...ImageFields\n      }\n    }\n  }\n"): typeof import('./graphql.js').TaskProgressDocument;


export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}
