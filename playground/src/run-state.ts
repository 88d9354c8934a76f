/**
 * What the live view shows of one task, folded from the service's frames (pure, no DOM). Frames are
 * absolute, so a missed one costs nothing; per image the page keeps the step, a bar that never goes
 * back, the newest preview, an ETA from the pace of its own steps, and its result once stored.
 */
import type { Image, Task, TaskProgress, TaskStatus } from '@kontext-gateway/sdk';

/** One image of the task. */
export interface ImageRun {
  index: number;
  step: number | null;
  totalSteps: number | null;
  /** 0-100, never lower than before. */
  percent: number;
  /** Seconds until this image is done, from the pace of its steps so far. */
  etaSeconds: number | null;
  /** The newest sampler preview (a data: URL) and when its frame arrived (performance.now()). */
  preview: { url: string; receivedAt: number } | null;
  result: Image | null;
  /** Where the pace is measured from: the first step seen and when. */
  pace: { step: number; at: number } | null;
}

/** The task as the live view shows it. */
export interface RunState {
  taskId: string;
  description: string;
  status: TaskStatus;
  progress: number;
  queuePosition: number | null;
  etaSeconds: number | null;
  error: string | null;
  seed: number | null;
  images: ImageRun[];
}

/** True once nothing more will happen to the task. */
export function isFinal(status: TaskStatus): boolean {
  return status === 'COMPLETED' || status === 'FAILED' || status === 'CANCELLED';
}

/** The view of a task as read with `task(id)`: finished images are results, the rest wait. */
export function runFromTask(task: Task): RunState {
  const done = new Map(task.images.map((image) => [image.index, image]));
  return {
    taskId: task.id,
    description: task.description,
    status: task.status,
    progress: task.progress,
    queuePosition: task.queuePosition ?? null,
    etaSeconds: null,
    error: task.error ?? null,
    seed: task.seed ?? null,
    images: Array.from({ length: task.count }, (_, index) => {
      const result = done.get(index) ?? null;
      return { index, step: null, totalSteps: task.steps, percent: result ? 100 : 0, etaSeconds: null, preview: null, result, pace: null };
    }),
  };
}

/**
 * The view once the task is read again (at its end): its stored images and fields, with bars that
 * keep the height they reached and the last previews of images that never finished.
 */
export function mergeTask(run: RunState, task: Task): RunState {
  const read = runFromTask(task);
  return {
    ...read,
    progress: Math.max(run.progress, read.progress),
    images: read.images.map((image) => {
      const before = run.images[image.index];
      return before ? { ...image, percent: Math.max(before.percent, image.percent), preview: before.preview, step: before.step } : image;
    }),
  };
}

/** The view after one frame that arrived at `now` (performance.now()). */
export function applyFrame(run: RunState, frame: TaskProgress, now: number): RunState {
  const images = run.images.map((image) => {
    if (frame.image && frame.image.index === image.index) return { ...image, result: frame.image, percent: 100, etaSeconds: 0, preview: image.preview };
    if (frame.imageIndex !== image.index || image.result) return image;
    const next = { ...image };
    if (frame.step != null && frame.totalSteps) {
      next.step = frame.step;
      next.totalSteps = frame.totalSteps;
      next.percent = Math.max(image.percent, Math.min(99, Math.floor((frame.step / frame.totalSteps) * 100)));
      // A restarted image (moved to another server) starts its pace again.
      next.pace = image.pace && frame.step >= image.pace.step ? image.pace : { step: frame.step, at: now };
      const steps = frame.step - next.pace.step;
      next.etaSeconds = steps > 0 ? (((now - next.pace.at) / steps) * (frame.totalSteps - frame.step)) / 1000 : image.etaSeconds;
    }
    if (frame.preview) next.preview = { url: frame.preview, receivedAt: now };
    return next;
  });
  return {
    ...run,
    status: frame.status,
    progress: Math.max(run.progress, frame.progress),
    queuePosition: frame.queuePosition ?? null,
    etaSeconds: frame.etaSeconds ?? null,
    error: frame.error ?? run.error,
    images: frame.status === 'COMPLETED' ? images.map((image) => ({ ...image, percent: 100, etaSeconds: 0 })) : images,
  };
}

/** "3 s", "1 min 5 s": a short human duration. */
export function formatSeconds(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
}
