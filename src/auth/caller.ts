/**
 * Who is calling: the key a request presented, with what it may do and how much it may take.
 * Routes and resolvers get one from the Authenticator and hand it to the task service, which
 * decides what the caller sees.
 */
import type { ApiKeyRow, KeyPriority, KeyScope } from '../db/types.js';

/** What one key may take; undefined: no limit. */
export interface KeyLimits {
  /** Pending plus processing tasks at once. */
  maxConcurrent?: number;
  /** Images in any rolling 24 hours. */
  imagesPerDay?: number;
  /** Generate requests per minute. */
  ratePerMinute?: number;
}

/** The caller of one request (or one graphql-ws connection). */
export interface Caller {
  /** The key's id, recorded as the owner of the tasks it makes; null while the service is open. */
  keyId: string | null;
  /** The key's name, for logs. */
  name: string;
  scopes: ReadonlySet<KeyScope>;
  /** Sees, watches and cancels every task (an admin key, or anyone while the service is open). */
  seesAll: boolean;
  limits: KeyLimits;
  priority: KeyPriority;
}

/** Anyone, while no key exists: the service behaves as the old one did. */
export const OPEN_CALLER: Caller = Object.freeze({
  keyId: null,
  name: 'open',
  scopes: new Set<KeyScope>(['generate', 'read', 'admin']),
  seesAll: true,
  limits: {},
  priority: 'normal',
});

/** The caller a stored key stands for. */
export function callerOfKey(row: ApiKeyRow): Caller {
  const scopes = new Set(row.scopes.split(',').filter(Boolean) as KeyScope[]);
  // admin implies the others: an operator's key can do everything a user's can.
  if (scopes.has('admin')) {
    scopes.add('generate');
    scopes.add('read');
  }
  return {
    keyId: row.id,
    name: row.name,
    scopes,
    seesAll: scopes.has('admin'),
    limits: {
      ...(row.max_concurrent !== null ? { maxConcurrent: row.max_concurrent } : {}),
      ...(row.images_per_day !== null ? { imagesPerDay: row.images_per_day } : {}),
      ...(row.rate_per_minute !== null ? { ratePerMinute: row.rate_per_minute } : {}),
    },
    priority: row.priority,
  };
}

/** Whether `caller` may see a task owned by `ownerKeyId` (null: made while the service was open). */
export function canSee(caller: Caller, ownerKeyId: string | null): boolean {
  return caller.seesAll || (ownerKeyId !== null && ownerKeyId === caller.keyId);
}
