/**
 * `GET /api/task-status/{task_id}` and `POST /api/task/{task_id}/cancel`: a task in the old
 * service's shape, extended with what the engine adds.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Caller } from '../auth/caller.js';
import { imageUrl } from '../tasks/image-url.js';
import type { TaskService, TaskView } from '../tasks/task-service.js';
import { sendDetail, sendJson } from './respond.js';

/** The base of absolute URLs: PUBLIC_URL, else the request's own host. */
export function baseUrlOf(req: IncomingMessage, publicUrl: string | undefined): string {
  if (publicUrl) return publicUrl;
  const host = req.headers.host ?? 'localhost';
  return `http://${host}`;
}

/** The legacy task-status body. */
export function taskStatusBody(view: TaskView, baseUrl: string): Record<string, unknown> {
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
    images: images.filter((i) => i.status === 'completed').map((i) => imageUrl(baseUrl, task.id, i.idx)),
    // Relative to DATA_DIR: the old service showed absolute server paths.
    result_path: view.resultPaths,
    error_message: task.error_message,
    queue_position: view.queuePosition,
    created_at: task.created_at,
    updated_at: task.updated_at,
  };
}

/** GET status or POST cancel. */
export async function handleTaskStatus(
  req: IncomingMessage,
  res: ServerResponse,
  taskId: string,
  service: TaskService,
  publicUrl: string | undefined,
  cancel: boolean,
  caller: Caller,
): Promise<void> {
  const view = cancel ? await service.cancelTask(taskId, caller) : await service.getTask(taskId, caller);
  if (!view) return sendDetail(res, 404, 'Task not found');
  sendJson(res, 200, taskStatusBody(view, baseUrlOf(req, publicUrl)));
}
