/**
 * What an API key looks like: `kx_` and 43 characters of base64url (32 random bytes). The prefix
 * lets secret scanners recognise a leaked key; only its SHA-256 is stored (a key has 256 bits of
 * randomness, so a fast hash is enough: there is nothing to guess).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Every key starts with this. */
export const KEY_PREFIX = 'kx_';

/** Characters of a key kept in the database to recognise it in a list (the prefix and 8 more). */
const SHOWN_CHARACTERS = KEY_PREFIX.length + 8;

/** A new key, its hash and the part shown in lists. */
export function newApiKey(): { key: string; hash: string; prefix: string } {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, hash: hashApiKey(key), prefix: key.slice(0, SHOWN_CHARACTERS) };
}

/** A public key id, `key_` and 16 hex characters. */
export function newApiKeyId(): string {
  return `key_${randomBytes(8).toString('hex')}`;
}

/** SHA-256 of a key, hex. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Two hex hashes compared in constant time. */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** Longest header value looked at: a key is 46 characters; anything longer is refused unread. */
const MAX_PRESENTED_LENGTH = 256;

/**
 * The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`. Undefined when
 * neither is there; `''` when one is there but holds no usable key (a wrong scheme, too long).
 */
export function presentedKey(authorization: string | null | undefined, apiKey?: string | null): string | undefined {
  if (authorization) {
    if (authorization.length > MAX_PRESENTED_LENGTH) return '';
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
    return m ? m[1]! : '';
  }
  if (apiKey) return apiKey.length > MAX_PRESENTED_LENGTH ? '' : apiKey.trim();
  return undefined;
}
