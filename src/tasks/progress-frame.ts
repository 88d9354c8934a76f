/**
 * A progress frame: the absolute state of a task at one moment, numbered by the task's `seq`. Frames
 * are persisted (the latest is the snapshot a new subscriber starts from), then published. Being
 * absolute, a subscriber that missed some still shows the right state after the next one.
 */
import type { TaskStatus } from '../db/types.js';

/** A finished image, as announced in the frame it became available in. */
export interface FrameImage {
  index: number;
  width: number;
  height: number;
  seed: number;
  contentType: string;
  bytes: number;
}

export interface ProgressFrame {
  taskId: string;
  /** Grows by one per persisted frame of this task. */
  seq: number;
  status: TaskStatus;
  /** 0-100: finished images plus the running images' step fractions; never goes back. */
  progress: number;
  /** The image the step, node and preview belong to. */
  imageIndex: number | null;
  step: number | null;
  totalSteps: number | null;
  /** The ComfyUI node executing. */
  node: string | null;
  /** 1 = next to start; only while pending. */
  queuePosition: number | null;
  etaSeconds: number | null;
  /** A `data:` URL of the latest preview (not persisted: only on live frames). */
  preview: string | null;
  /** Set on the frame in which that image became available. */
  image: FrameImage | null;
  error: string | null;
}

/** True for statuses after which nothing changes. */
export function isFinal(status: TaskStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/** A frame with every optional part empty. */
export function emptyFrame(taskId: string, status: TaskStatus, progress: number): Omit<ProgressFrame, 'seq'> {
  return {
    taskId,
    status,
    progress,
    imageIndex: null,
    step: null,
    totalSteps: null,
    node: null,
    queuePosition: null,
    etaSeconds: null,
    preview: null,
    image: null,
    error: null,
  };
}
