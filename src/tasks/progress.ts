/**
 * Progress, ETA and throttling of a task's frames: pure functions of its in-memory state, so they
 * are tested without servers.
 */
import type { ActiveTask, RunningImage } from './active-task.js';

/**
 * Finished images plus the running images' step fractions, in percent, at most 99: only the
 * transition that completes the task sets 100.
 */
export function taskProgress(task: Pick<ActiveTask, 'running' | 'row'>, done: number): number {
  let partial = 0;
  for (const s of task.running.values()) partial += s.total > 0 ? Math.min(1, s.step / s.total) : 0;
  return Math.min(99, Math.floor((100 * (done + partial)) / task.row.count));
}

/**
 * Seconds left: the remaining sampler steps (of running and not yet started images) times the
 * measured step time, shared by the images running in parallel; null before any step was timed.
 */
export function etaSeconds(task: Pick<ActiveTask, 'running' | 'row' | 'stepMs'>, done: number): number | null {
  if (task.stepMs === undefined) return null;
  const running = [...task.running.values()];
  const remainingRunning = running.reduce((n, s) => n + Math.max(0, s.total - s.step), 0);
  const notStarted = Math.max(0, task.row.count - done - running.length) * task.row.steps;
  const parallel = Math.max(1, running.length);
  return Math.round(((remainingRunning + notStarted) * task.stepMs) / parallel / 100) / 10;
}

/** Weight of the newest step time in the smoothed step time. */
const STEP_SMOOTHING = 0.3;

/** Records a sampler step of `image`, updating the task's smoothed step time. */
export function recordStep(task: Pick<ActiveTask, 'stepMs'>, image: RunningImage, value: number, max: number, at: number): void {
  if (image.lastStepAt && value > image.step) {
    const per = (at - image.lastStepAt) / (value - image.step);
    task.stepMs = task.stepMs === undefined ? per : task.stepMs * (1 - STEP_SMOOTHING) + per * STEP_SMOOTHING;
  }
  image.step = value;
  image.total = max;
  image.lastStepAt = at;
}

/**
 * The preview to send with the next frame: the latest one, if it is new and the last was sent at
 * least `intervalMs` ago (then it counts as sent); otherwise null.
 */
export function takePreview(task: Pick<ActiveTask, 'preview' | 'lastPreviewAt'>, at: number, intervalMs: number): string | null {
  if (!task.preview?.fresh || at - task.lastPreviewAt < intervalMs) return null;
  task.preview.fresh = false;
  task.lastPreviewAt = at;
  return task.preview.dataUrl;
}

/**
 * Whether a frame that only reports a new executing node is worth writing: a fresh prompt runs a
 * dozen quick nodes before sampling, and the next frame carries the node anyway.
 */
export function nodeFrameDue(task: Pick<ActiveTask, 'lastFrameAt'>, at: number, intervalMs: number): boolean {
  return at - task.lastFrameAt >= intervalMs;
}
