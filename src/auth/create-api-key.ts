/** Making a key: what `kontext keys create` does, and tests too. */
import type { Db } from '../db/database.js';
import { insertApiKey } from '../db/api-keys.js';
import type { ApiKeyRow, KeyPriority, KeyScope } from '../db/types.js';
import { newApiKey, newApiKeyId } from './api-key.js';

/** What a new key may do and take. */
export interface NewKeyOptions {
  name: string;
  /** @default ['generate', 'read'] */
  scopes?: readonly KeyScope[];
  /** Pending plus processing tasks at once. @default undefined (no limit) */
  maxConcurrent?: number;
  /** Images in any rolling 24 hours. @default undefined (no limit) */
  imagesPerDay?: number;
  /** Generate requests per minute. @default undefined (no limit) */
  ratePerMinute?: number;
  /** @default 'normal' */
  priority?: KeyPriority;
}

/** Stores a new key and returns it with its row: the only time the key itself is ever seen. */
export async function createApiKey(db: Db, options: NewKeyOptions): Promise<{ key: string; row: ApiKeyRow }> {
  const { key, hash, prefix } = newApiKey();
  const row = await insertApiKey(db, {
    id: newApiKeyId(),
    name: options.name,
    prefix,
    hash,
    scopes: (options.scopes ?? ['generate', 'read']).join(','),
    max_concurrent: options.maxConcurrent ?? null,
    images_per_day: options.imagesPerDay ?? null,
    rate_per_minute: options.ratePerMinute ?? null,
    priority: options.priority ?? 'normal',
    created_at: new Date().toISOString(),
  });
  return { key, row };
}
