/**
 * `GET /metrics`: the Prometheus text format. With METRICS_TOKEN set, a scrape must send it as a
 * Bearer token (API keys are not accepted here: a Prometheus server is not a user).
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Metrics } from '../metrics/metrics.js';
import { sendDetail } from './respond.js';

/** Answers a scrape; `token` is METRICS_TOKEN (undefined: public). */
export async function handleMetrics(req: IncomingMessage, res: ServerResponse, metrics: Metrics, token: string | undefined): Promise<void> {
  if (token !== undefined && !bearerMatches(req.headers.authorization, token)) {
    res.setHeader('www-authenticate', 'Bearer realm="metrics"');
    return sendDetail(res, 401, 'GET /metrics needs METRICS_TOKEN as "Authorization: Bearer <token>"');
  }
  const { body, contentType } = await metrics.scrape();
  res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** Whether the header is `Bearer <token>`, compared in constant time. */
function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
