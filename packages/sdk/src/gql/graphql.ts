/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
export type GenerateInput = {
  /** Images to make, 1-4. */
  count?: number | null | undefined;
  /** What to change, 1-2000 characters. */
  description: string;
  /** Flux guidance, 0-20. */
  guidance?: number | null | undefined;
  /** Sending the same key with the same request again returns the same task. */
  idempotencyKey?: string | null | undefined;
  /** A PNG, JPEG or WebP image (GraphQL multipart request). */
  referenceImage: File | Blob;
  /** Base seed (image i uses seed + i); random when omitted. */
  seed?: number | null | undefined;
  /** `auto` (Kontext picks from the reference) or `WxH`, both sides multiples of 16 in 256-2048. */
  size?: string | null | undefined;
  /** Sampler steps, 1-100. */
  steps?: number | null | undefined;
  /** An http(s) URL that receives signed POSTs (Standard Webhooks) as the task moves on. Refused when its host resolves to a loopback, private, link-local or metadata address, unless WEBHOOK_ALLOW_HOSTS lists it. */
  webhook?: string | null | undefined;
  /** The events `webhook` receives. Default: `[COMPLETED]`. */
  webhookEvents?: Array<WebhookEvent> | null | undefined;
};

/** The limit that refused a request. */
export type QuotaLimit =
  /** The key's images in the last 24 hours. */
  | 'IMAGES_PER_DAY'
  /** The key's pending plus processing tasks. */
  | 'MAX_CONCURRENT'
  /** The service's ceiling on queued tasks (MAX_QUEUED_TASKS), for every key. */
  | 'MAX_QUEUED_TASKS'
  /** The key's generate requests per minute. */
  | 'RATE';

export type TaskStatus =
  /** Cancelled by a client; finished images are kept. */
  | 'CANCELLED'
  /** Every image is ready. */
  | 'COMPLETED'
  /** Stopped by an error (see `error`); finished images are kept. */
  | 'FAILED'
  /** Waiting in the queue. */
  | 'PENDING'
  /** Its images are being generated. */
  | 'PROCESSING';

/** An event a task sends to its webhook. */
export type WebhookEvent =
  /** The task ended: completed, failed or cancelled (`task.completed`). */
  | 'COMPLETED'
  /** An image is ready (`task.output`). */
  | 'OUTPUT'
  /** Processing began (`task.start`). */
  | 'START';

export type ImageFieldsFragment = { index: number, url: string, width: number, height: number, seed: number, contentType: string, bytes: number };

export type TaskFieldsFragment = { id: string, description: string, status: TaskStatus, progress: number, count: number, size: string, steps: number, guidance: number, seed: number, error: string | null, queuePosition: number | null, createdAt: string, updatedAt: string, startedAt: string | null, finishedAt: string | null, images: Array<{ index: number, url: string, width: number, height: number, seed: number, contentType: string, bytes: number }> };

export type GenerateMutationVariables = Exact<{
  input: GenerateInput;
}>;


export type GenerateMutation = { generate:
    | { __typename: 'GenerateSuccess', task: { id: string, description: string, status: TaskStatus, progress: number, count: number, size: string, steps: number, guidance: number, seed: number, error: string | null, queuePosition: number | null, createdAt: string, updatedAt: string, startedAt: string | null, finishedAt: string | null, images: Array<{ index: number, url: string, width: number, height: number, seed: number, contentType: string, bytes: number }> } }
    | { __typename: 'QuotaExceededError', message: string, limit: QuotaLimit, retryAfterSeconds: number }
    | { __typename: 'UploadRejectedError', message: string, reason: string }
    | { __typename: 'ValidationError', message: string, field: string }
   };

export type TaskQueryVariables = Exact<{
  id: string;
}>;


export type TaskQuery = { task: { id: string, description: string, status: TaskStatus, progress: number, count: number, size: string, steps: number, guidance: number, seed: number, error: string | null, queuePosition: number | null, createdAt: string, updatedAt: string, startedAt: string | null, finishedAt: string | null, images: Array<{ index: number, url: string, width: number, height: number, seed: number, contentType: string, bytes: number }> } | null };

export type TasksQueryVariables = Exact<{
  first?: number | null | undefined;
  after?: string | null | undefined;
  status?: TaskStatus | null | undefined;
}>;


export type TasksQuery = { tasks: { edges: Array<{ cursor: string, node: { id: string, description: string, status: TaskStatus, progress: number, count: number, size: string, steps: number, guidance: number, seed: number, error: string | null, queuePosition: number | null, createdAt: string, updatedAt: string, startedAt: string | null, finishedAt: string | null, images: Array<{ index: number, url: string, width: number, height: number, seed: number, contentType: string, bytes: number }> } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } };

export type CancelTaskMutationVariables = Exact<{
  id: string;
}>;


export type CancelTaskMutation = { cancelTask: { id: string, description: string, status: TaskStatus, progress: number, count: number, size: string, steps: number, guidance: number, seed: number, error: string | null, queuePosition: number | null, createdAt: string, updatedAt: string, startedAt: string | null, finishedAt: string | null, images: Array<{ index: number, url: string, width: number, height: number, seed: number, contentType: string, bytes: number }> } | null };

export type TaskProgressSubscriptionVariables = Exact<{
  taskId: string;
}>;


export type TaskProgressSubscription = { taskProgress: { taskId: string, seq: number, status: TaskStatus, progress: number, imageIndex: number | null, step: number | null, totalSteps: number | null, node: string | null, queuePosition: number | null, etaSeconds: number | null, preview: string | null, error: string | null, image: { index: number, url: string, width: number, height: number, seed: number, contentType: string, bytes: number } | null } };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const ImageFieldsFragmentDoc = new TypedDocumentString(`
    fragment ImageFields on Image {
  index
  url
  width
  height
  seed
  contentType
  bytes
}
    `, {"fragmentName":"ImageFields"}) as unknown as TypedDocumentString<ImageFieldsFragment, unknown>;
export const TaskFieldsFragmentDoc = new TypedDocumentString(`
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
    fragment ImageFields on Image {
  index
  url
  width
  height
  seed
  contentType
  bytes
}`, {"fragmentName":"TaskFields"}) as unknown as TypedDocumentString<TaskFieldsFragment, unknown>;
export const GenerateDocument = new TypedDocumentString(`
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
    fragment ImageFields on Image {
  index
  url
  width
  height
  seed
  contentType
  bytes
}
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
}`, {"hash":"sha256:87ce52e9bf1e924b3caaad6b83d0e5f6c6a12f274813baa678f150df060cf816"}) as unknown as TypedDocumentString<GenerateMutation, GenerateMutationVariables>;
export const TaskDocument = new TypedDocumentString(`
    query Task($id: ID!) {
  task(id: $id) {
    ...TaskFields
  }
}
    fragment ImageFields on Image {
  index
  url
  width
  height
  seed
  contentType
  bytes
}
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
}`, {"hash":"sha256:b8ef8411784ce4693384094ceffac694dfdfc7c5bde0b2da0dfb27dde9afbabd"}) as unknown as TypedDocumentString<TaskQuery, TaskQueryVariables>;
export const TasksDocument = new TypedDocumentString(`
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
    fragment ImageFields on Image {
  index
  url
  width
  height
  seed
  contentType
  bytes
}
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
}`, {"hash":"sha256:5b8fa039600fa0423b1428b2562d62e79a123f2d8fd49c4836636f2d2b45e0db"}) as unknown as TypedDocumentString<TasksQuery, TasksQueryVariables>;
export const CancelTaskDocument = new TypedDocumentString(`
    mutation CancelTask($id: ID!) {
  cancelTask(id: $id) {
    ...TaskFields
  }
}
    fragment ImageFields on Image {
  index
  url
  width
  height
  seed
  contentType
  bytes
}
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
}`, {"hash":"sha256:71f85a71e630ba2f6cdc74be7bc61525401c02f38ba183630ef7ef6154fa258e"}) as unknown as TypedDocumentString<CancelTaskMutation, CancelTaskMutationVariables>;
export const TaskProgressDocument = new TypedDocumentString(`
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
    fragment ImageFields on Image {
  index
  url
  width
  height
  seed
  contentType
  bytes
}`, {"hash":"sha256:c22cff0530209cd9770c39fffa233fd39840e1ff5d7a694dd49a0cb5a031bd64"}) as unknown as TypedDocumentString<TaskProgressSubscription, TaskProgressSubscriptionVariables>;