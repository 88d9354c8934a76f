/**
 * The transitions with a recorder bound in: the engine's parts call them as before, and every state
 * change that causes a webhook event writes it with the service's settings (WEBHOOK_URL, signed
 * image URLs, the base URL).
 */
import type { Transitions } from '../tasks/transitions/index.js';
import type { WebhookRecorder } from './recorder.js';

/** `transitions` (possibly wrapped by a test) with `webhooks` passed to the ones that record events. */
export function withWebhooks(transitions: Transitions, webhooks: WebhookRecorder): Transitions {
  return {
    ...transitions,
    claimTask: (db, options) => transitions.claimTask(db, { webhooks, ...options }),
    completeImage: (db, input) => transitions.completeImage(db, { webhooks, ...input }),
    endTask: (db, input) => transitions.endTask(db, { webhooks, ...input }),
    settleTask: (db, taskId, dataDir, given) => transitions.settleTask(db, taskId, dataDir, given ?? webhooks),
    cancelPendingTask: (db, taskId, given) => transitions.cancelPendingTask(db, taskId, given ?? webhooks),
  };
}
