/**
 * `GET /api/task-status/{task_id}` and `POST /api/task/{task_id}/cancel`: a task in the old
 * service's shape, extended with what the engine adds.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Caller } from '../auth/caller.js';
import type { UrlSigner } from '../auth/url-signer.js';
import { etagMatches } from '../http/static-files.js';
import { isFinal } from '../tasks/progress-frame.js';
import { taskStatusBody } from '../tasks/task-status-body.js';
import type { TaskService } from '../tasks/task-service.js';
import { sendDetail, sendJson } from './respond.js';
import { FINISHED_TASK_HEADERS, taskStatusEtag } from './task-status-etag.js';

// Moved to the tasks layer (webhooks send it too); still importable from here.
export { taskStatusBody };

/** The base of absolute URLs: PUBLIC_URL, else the request's own host. */
export function baseUrlOf(req: IncomingMessage, publicUrl: string | undefined): string {
  if (publicUrl) return publicUrl;
  const host = req.headers.host ?? 'localhost';
  return `http://${host}`;
}

/** The signer for the image URLs `caller` is handed: none in open mode (the URLs stay as they were). */
export function signerFor(caller: Caller, signer: UrlSigner | undefined): UrlSigner | undefined {
  return caller.keyId !== null ? signer : undefined;
}

/** What the status and cancel routes need. */
export interface TaskStatusOptions {
  service: TaskService;
  publicUrl: string | undefined;
  /** Signs the image URLs of a caller with a key. @default undefined (unsigned) */
  signer?: UrlSigner;
  /** Cancel the task (POST) rather than read it (GET). */
  cancel: boolean;
  /** Who asks: another key's task is answered as missing. */
  caller: Caller;
}

/**
 * GET status or POST cancel. A finished task's status carries a weak ETag (task-status-etag.ts);
 * a GET whose If-None-Match names it gets a 304, after the ownership check and before the images
 * are read.
 */
export async function handleTaskStatus(req: IncomingMessage, res: ServerResponse, taskId: string, options: TaskStatusOptions): Promise<void> {
  const { service, caller } = options;
  const baseUrl = baseUrlOf(req, options.publicUrl);
  const signer = signerFor(caller, options.signer);
  if (options.cancel) {
    const view = await service.cancelTask(taskId, caller);
    if (!view) return sendDetail(res, 404, 'Task not found');
    return sendJson(res, 200, taskStatusBody(view, baseUrl, signer));
  }
  const task = await service.visibleTask(taskId, caller);
  if (!task) return sendDetail(res, 404, 'Task not found');
  if (!isFinal(task.status)) return sendJson(res, 200, taskStatusBody(await service.viewOf(task), baseUrl, signer));
  // Given to writeHead at once: headers set one by one first are copied and merged there.
  const headers = { ...FINISHED_TASK_HEADERS, etag: taskStatusEtag(task, baseUrl, signer) };
  if (etagMatches(req.headers['if-none-match'], headers.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  sendJson(res, 200, taskStatusBody(await service.viewOf(task), baseUrl, signer), headers);
}
