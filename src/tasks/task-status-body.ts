/**
 * The legacy task-status body (`GET /api/task-status/{id}`), in the tasks layer: the REST routes
 * answer with it and every webhook carries it as `data`.
 */
import type { UrlSigner } from '../auth/url-signer.js';
import type { ImageRow, TaskRow } from '../db/types.js';
import { imageUrl } from './image-url.js';

/** What the body shows: TaskView's shape (declared here so this module needs nothing of the service layer). */
export interface TaskStatusView {
  task: TaskRow;
  images: ImageRow[];
  /** 1 = next to start; only while pending. */
  queuePosition: number | null;
  /** The legacy `result_path` list, relative to DATA_DIR. */
  resultPaths: string[];
}

/** The legacy task-status body; image URLs are signed when `signer` is given. */
export function taskStatusBody(view: TaskStatusView, baseUrl: string, signer?: UrlSigner): Record<string, unknown> {
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
