/**
 * The URL of a finished image: the REST image route, which both APIs hand out (REST in
 * `images`, GraphQL in `Image.url`), so a client can fetch the bytes the same way from either.
 */

/**
 * `<base>/api/image/<task id>?index=<i>`. `base` is an origin (and path prefix) without a trailing
 * slash, e.g. PUBLIC_URL; the empty string gives a path relative to the serving host.
 */
export function imageUrl(base: string, taskId: string, index: number): string {
  return `${base}/api/image/${encodeURIComponent(taskId)}?index=${index}`;
}
