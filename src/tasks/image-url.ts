/**
 * The URL of a finished image: the REST image route, which both APIs hand out (REST in
 * `images`, GraphQL in `Image.url`), so a client can fetch the bytes the same way from either.
 */

import type { UrlSigner } from '../auth/url-signer.js';

/**
 * `<base>/api/image/<task id>?index=<i>`, with `&exp=...&sig=...` when a signer is given (once API
 * keys exist: an `<img>` cannot send a key). `base` is an origin (and path prefix) without a
 * trailing slash, e.g. PUBLIC_URL; the empty string gives a path relative to the serving host.
 */
export function imageUrl(base: string, taskId: string, index: number, signer?: UrlSigner): string {
  const url = `${base}/api/image/${encodeURIComponent(taskId)}?index=${index}`;
  return signer ? `${url}&${signer.sign(taskId, index)}` : url;
}
