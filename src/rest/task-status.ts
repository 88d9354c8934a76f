/**
 * `GET /api/task-status/{task_id}` and `POST /api/task/{task_id}/cancel`: a task in the old
 * service's shape, extended with what the engine adds.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Caller } from '../auth/caller.js';
import type { UrlSigner } from '../auth/url-signer.js';
import { taskStatusBody } from '../tasks/task-status-body.js';
import type { TaskService } from '../tasks/task-service.js';
import { sendDetail, sendJson } from './respond.js';

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

/** GET status or POST cancel. */
export async function handleTaskStatus(req: IncomingMessage, res: ServerResponse, taskId: string, options: TaskStatusOptions): Promise<void> {
  const { service, caller } = options;
  const view = options.cancel ? await service.cancelTask(taskId, caller) : await service.getTask(taskId, caller);
  if (!view) return sendDetail(res, 404, 'Task not found');
  sendJson(res, 200, taskStatusBody(view, baseUrlOf(req, options.publicUrl), signerFor(caller, options.signer)));
}
