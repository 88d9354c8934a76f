/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-id` (the event's, the
 * same on every attempt), `webhook-timestamp` (this attempt's, in Unix seconds: receivers refuse
 * old ones) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), made with
 * the `standardwebhooks` library receivers verify with.
 */
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { Db } from '../db/database.js';
import { settingOrCreate } from '../db/settings.js';

/** The settings row that keeps a generated secret, shared by every replica. */
export const WEBHOOK_SECRET_SETTING = 'webhook_secret';

/** A new secret in the `whsec_<base64>` form (32 random bytes). */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** WEBHOOK_SECRET when set; otherwise the one stored in the database, made and stored on first use. */
export async function loadWebhookSecret(db: Db, configured: string | undefined): Promise<string> {
  return configured ?? (await settingOrCreate(db, WEBHOOK_SECRET_SETTING, newWebhookSecret()));
}

/** Signs webhook bodies with one secret. */
export class WebhookSigner {
  private readonly webhook: Webhook;

  /** @param secret `whsec_<base64>`. */
  constructor(secret: string) {
    this.webhook = new Webhook(secret);
  }

  /** The three signature headers of one attempt to send `body` as event `id`, at `now` (@default the current time). */
  headers(id: string, body: string, now = new Date()): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
    const seconds = Math.floor(now.getTime() / 1000);
    return {
      'webhook-id': id,
      'webhook-timestamp': String(seconds),
      'webhook-signature': this.webhook.sign(id, new Date(seconds * 1000), body),
    };
  }
}
