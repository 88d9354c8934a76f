/**
 * `GET /api/task-status/{task_id}` and `POST /api/task/{task_id}/cancel`: a task in the old
 * service's shape, extended with what the engine adds.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Caller } from '../auth/caller.js';
import type { UrlSigner } from '../auth/url-signer.js';
import { imageUrl } from '../tasks/image-url.js';
import type { TaskService, TaskView } from '../tasks/task-service.js';
import { sendDetail, sendJson } from './respond.js';

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

/** The legacy task-status body; image URLs are signed when `signer` is given. */
export function taskStatusBody(view: TaskView, baseUrl: string, signer?: UrlSigner): Record<string, unknown> {
  const { task, images } = view;
  return {
    task_id: task.id,
    status: task.status,
    progress: task.progress,
    description: task.description,
    count: task.count,
    size: task.size,
    steps: task.steps,
    guidance: task.guidance,
    seed: task.base_seed,
    images: images.filter((i) => i.status === 'completed').map((i) => imageUrl(baseUrl, task.id, i.idx, signer)),
    // Relative to DATA_DIR: the old service showed absolute server paths.
    result_path: view.resultPaths,
    error_message: task.error_message,
    queue_position: view.queuePosition,
    created_at: task.created_at,
    updated_at: task.updated_at,
  };
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
