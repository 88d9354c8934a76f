/**
 * The playground's link to the service: an SDK client for the page's own origin (with the API key
 * when one is set), the key kept in local storage (never in a URL), and whether keys are in force.
 */
import { createKontextClient, type KontextClient } from '@kontext-gateway/sdk';

const KEY_STORAGE = 'kontext-playground.apiKey';

/** Whether the service requires API keys, from the public `/health` (`unknown` when it could not say). */
export type AuthMode = 'open' | 'keys' | 'unknown';

/** The stored API key, or '' (also when the browser refuses storage). */
export function loadApiKey(): string {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? '';
  } catch {
    return '';
  }
}

/** Keeps the key in local storage; an empty key removes it. */
export function saveApiKey(key: string): void {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage refused (private mode, quota): the key still works until the page closes.
  }
}

/** A client for this page's service; the key goes in headers and graphql-ws' connection_init only. */
export function makeClient(apiKey: string): KontextClient {
  return createKontextClient({ url: new URL('/graphql', location.href).href, ...(apiKey ? { apiKey } : {}) });
}

/** Asks `/health` whether keys are in force. */
export async function fetchAuthMode(): Promise<AuthMode> {
  try {
    const res = await fetch('/health', { headers: { accept: 'application/json' } });
    const body = (await res.json()) as { auth?: unknown };
    return body.auth === 'open' || body.auth === 'keys' ? body.auth : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** An image URL with a variant (WebP, at most `width` wide) for grids; the signature covers any variant. */
export function variantUrl(url: string, width: number): string {
  return `${url}${url.includes('?') ? '&' : '?'}format=webp&width=${width}`;
}
