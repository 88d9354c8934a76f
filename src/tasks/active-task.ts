/**
 * What the engine keeps in memory about a processing task: progress within the images that run now,
 * the smoothed step time, the latest preview. Rebuilt from the database after a restart (the
 * database holds everything that must survive; this holds what makes frames cheap to compute).
 */
import type { TaskRow } from '../db/types.js';
import type { PoolMember } from './worker-pool.js';

/** One image running on a server. */
export interface RunningImage {
  member: PoolMember;
  promptId: string;
  step: number;
  total: number;
  node: string | null;
  /** When its last sampler step arrived (0: none yet). */
  lastStepAt: number;
}

export interface ActiveTask {
  row: TaskRow;
  /** Per image index, the images running now. */
  running: Map<number, RunningImage>;
  /** Images finished so far (kept here so a sampler step costs no database read). */
  done: number;
  /** 0-100; never goes back. */
  progress: number;
  /** Smoothed time per sampler step, ms. */
  stepMs: number | undefined;
  preview: { dataUrl: string; fresh: boolean } | undefined;
  lastPreviewAt: number;
  /** Set once the task is being cancelled or failed, or another replica took it over: its images stop mattering here. */
  stopping: 'cancel' | 'fail' | 'lost' | undefined;
  /** When it last made progress (a frame, a submission): a task no worker takes must not wait forever. */
  lastActivity: number;
  /** When its last frame was written, to spare subscribers a burst of frames that only change `node`. */
  lastFrameAt: number;
}

/** The in-memory state of a task just claimed or recovered. */
export function activeTask(row: TaskRow, now = Date.now()): ActiveTask {
  return {
    row,
    running: new Map(),
    done: 0,
    progress: row.progress,
    stepMs: undefined,
    preview: undefined,
    lastPreviewAt: 0,
    stopping: undefined,
    lastActivity: now,
    lastFrameAt: 0,
  };
}
