/** Moves the task and image counters and histograms from the engine's events. */
import type { Db } from '../db/database.js';
import { findImage } from '../db/images.js';
import { findTask } from '../db/tasks.js';
import { subscribe, type EngineEventBus } from '../tasks/events.js';
import type { Metrics } from './metrics.js';

/** Seconds from one ISO time to another; undefined when either is missing or unreadable. */
function secondsBetween(from: string | null | undefined, to: string | null | undefined): number | undefined {
  const a = from ? Date.parse(from) : NaN;
  const b = to ? Date.parse(to) : NaN;
  return Number.isFinite(a) && Number.isFinite(b) && b >= a ? (b - a) / 1000 : undefined;
}

/**
 * Observes `events` into `metrics`; durations come from the stored rows (the times the transitions
 * recorded), read after the event. Returns the function that stops observing.
 * @param onError a failed read (the metric is skipped, never the task). @default ignore
 */
export function observeEngine(events: EngineEventBus, metrics: Metrics, db: Db, onError: (err: unknown) => void = () => undefined): () => void {
  const stops = [
    subscribe(events, 'task.finished', ({ taskId, status }) => {
      metrics.tasksTotal.inc({ status });
      findTask(db, taskId)
        .then((task) => {
          const s = secondsBetween(task?.created_at, task?.finished_at ?? task?.updated_at);
          if (s !== undefined) metrics.taskDuration.observe(s);
        })
        .catch(onError);
    }),
    subscribe(events, 'image.ready', ({ taskId, index }) => {
      metrics.imagesTotal.inc({ status: 'completed' });
      findImage(db, taskId, index)
        .then((image) => {
          const s = secondsBetween(image?.submitted_at, image?.finished_at);
          if (s !== undefined) metrics.imageDuration.observe(s);
        })
        .catch(onError);
    }),
    subscribe(events, 'image.failed', () => metrics.imagesTotal.inc({ status: 'failed' })),
  ];
  return () => stops.forEach((stop) => stop());
}
