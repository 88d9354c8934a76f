/**
 * Conditional reads of a finished task's status (`ETag`, `If-None-Match`, 304).
 *
 * A completed, failed or cancelled task never changes again, so pollers that ask once more get a
 * 304 without its images being read or its body built. What the body still depends on is in the
 * tag: the task's last state (id, status, seq, updated_at), the base of its image URLs (PUBLIC_URL
 * or the request's Host) and, for a caller with a key, the signature of its URLs, which changes
 * whenever the signing window moves. Ownership is checked before any of this: another key's task
 * is a 404, whatever tag is sent.
 */
import { hash } from 'node:crypto';
import type { UrlSigner } from '../auth/url-signer.js';
import type { TaskRow } from '../db/types.js';

/** Changes when the body's shape does, so a new version never matches an old tag. */
const BODY_VERSION = 'status-1';

/** Headers of a finished task's 200 and 304: each use revalidates; the answer depends on the key sent. */
export const FINISHED_TASK_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cache-control': 'private, no-cache',
  vary: 'Authorization, X-API-Key',
});

/**
 * The weak ETag of a finished task's status body as it is served with `baseUrl` and `signer` (none:
 * unsigned URLs) at `nowMs` (@default Date.now()).
 */
export function taskStatusEtag(task: Pick<TaskRow, 'id' | 'status' | 'seq' | 'updated_at'>, baseUrl: string, signer: UrlSigner | undefined, nowMs = Date.now()): string {
  // Every image URL of the task is signed with the same expiry: one signature stands for all of them.
  const signature = signer ? signer.sign(task.id, 0, nowMs) : '';
  // The one-shot hash: a Hash object per request cost twice as much for these few bytes.
  const digest = hash('sha256', `${BODY_VERSION}\n${task.id}\n${task.status}\n${task.seq}\n${task.updated_at}\n${baseUrl}\n${signature}`, 'base64url').slice(0, 27);
  return `W/"${digest}"`;
}
