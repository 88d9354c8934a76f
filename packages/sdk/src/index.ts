/**
 * `@kontext-gateway/sdk`: the typed client for Kontext Gateway's GraphQL API, for Node 20+ and
 * browsers. Everything public is re-exported here; the generated documents in `gql/` stay internal.
 */
export {
  createKontextClient,
  KontextError,
  type GenerateOptions,
  type GenerateResult,
  type Image,
  type KontextClient,
  type KontextClientOptions,
  type QuotaLimit,
  type Task,
  type TaskPage,
  type TaskProgress,
  type TaskStatus,
  type WatchOptions,
  type WebhookEvent,
} from './client.js';
