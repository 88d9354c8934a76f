/**
 * The operations the SDK ships. `npm run codegen` turns them into typed documents in `gql/`
 * (TypedDocumentString: the query text plus its result and variable types, no AST at run time).
 */
import { graphql } from './gql/index.js';

export const ImageFields = graphql(`
  fragment ImageFields on Image {
    index
    url
    width
    height
    seed
    contentType
    bytes
  }
`);

export const TaskFields = graphql(`
  fragment TaskFields on Task {
    id
    description
    status
    progress
    count
    size
    steps
    guidance
    seed
    error
    queuePosition
    createdAt
    updatedAt
    startedAt
    finishedAt
    images {
      ...ImageFields
    }
  }
`);

export const GenerateDocument = graphql(`
  mutation Generate($input: GenerateInput!) {
    generate(input: $input) {
      __typename
      ... on GenerateSuccess {
        task {
          ...TaskFields
        }
      }
      ... on ValidationError {
        message
        field
      }
      ... on UploadRejectedError {
        message
        reason
      }
      ... on QuotaExceededError {
        message
        limit
        retryAfterSeconds
      }
    }
  }
`);

export const TaskDocument = graphql(`
  query Task($id: ID!) {
    task(id: $id) {
      ...TaskFields
    }
  }
`);

export const TasksDocument = graphql(`
  query Tasks($first: Int, $after: String, $status: TaskStatus) {
    tasks(first: $first, after: $after, status: $status) {
      edges {
        cursor
        node {
          ...TaskFields
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

export const CancelTaskDocument = graphql(`
  mutation CancelTask($id: ID!) {
    cancelTask(id: $id) {
      ...TaskFields
    }
  }
`);

export const TaskProgressDocument = graphql(`
  subscription TaskProgress($taskId: ID!) {
    taskProgress(taskId: $taskId) {
      taskId
      seq
      status
      progress
      imageIndex
      step
      totalSteps
      node
      queuePosition
      etaSeconds
      preview
      error
      image {
        ...ImageFields
      }
    }
  }
`);
