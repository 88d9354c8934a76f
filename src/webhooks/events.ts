/** The webhook events a task sends, their names on the wire, and the stored filter. */

/** `start`: processing began; `output`: an image is ready; `completed`: the task ended (completed, failed or cancelled). */
export const WEBHOOK_EVENTS = ['start', 'output', 'completed'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** What a task's own webhook receives when no filter is given. */
export const DEFAULT_WEBHOOK_EVENTS: readonly WebhookEvent[] = ['completed'];

/** The body's `type`: `task.start`, `task.output` or `task.completed`. */
export function webhookType(event: WebhookEvent): string {
  return `task.${event}`;
}

/** Whether `value` names an event. */
export function isWebhookEvent(value: string): value is WebhookEvent {
  return (WEBHOOK_EVENTS as readonly string[]).includes(value);
}

/** The stored filter (`tasks.webhook_events`, comma-separated) as a list; null gives the default. */
export function storedEvents(stored: string | null): WebhookEvent[] {
  if (stored === null) return [...DEFAULT_WEBHOOK_EVENTS];
  return stored.split(',').filter(isWebhookEvent);
}

/** A filter as stored: distinct, in the events' own order. */
export function storeEvents(events: readonly WebhookEvent[]): string {
  return WEBHOOK_EVENTS.filter((e) => events.includes(e)).join(',');
}
