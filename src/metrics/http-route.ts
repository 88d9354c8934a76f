/**
 * The route label of an HTTP request: the pattern, never the raw path, so a scan of random URLs or
 * task ids cannot grow the number of time series without bound.
 */

const PATTERNS: [RegExp, string][] = [
  [/^\/api\/task-status\/[^/]+$/, '/api/task-status/{task_id}'],
  [/^\/api\/task\/[^/]+\/cancel$/, '/api/task/{task_id}/cancel'],
  [/^\/api\/image\/[^/]+$/, '/api/image/{task_id}'],
  [/^\/graphql\/.+$/, '/graphql/*'],
  [/^\/docs\/assets\/[^/]+$/, '/docs/assets/*'],
  [/^\/playground\/assets\/[^/]+$/, '/playground/assets/*'],
];

/** Paths that are their own pattern. */
const FIXED = new Set(['/', '/health', '/ready', '/metrics', '/generate-image', '/graphql', '/openapi.json', '/docs', '/docs/']);

/** The route pattern of a request URL (query ignored); `other` for anything unknown. */
export function routeLabel(url: string | undefined): string {
  const path = (url ?? '/').split('?', 1)[0]!;
  if (FIXED.has(path)) return path === '/docs/' ? '/docs' : path;
  for (const [pattern, label] of PATTERNS) if (pattern.test(path)) return label;
  return 'other';
}
