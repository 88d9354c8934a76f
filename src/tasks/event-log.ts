/** The engine's log lines, written from its events (the logger is not an API; the events are). */
import type { Logger } from '../log.js';
import { subscribe, type EngineEventBus } from './events.js';

/** Logs every engine event as one line; returns the function that stops it. */
export function logEngineEvents(events: EngineEventBus, log: Logger): () => void {
  const stops = [
    subscribe(events, 'task.queued', ({ taskId, count }) => log.info('task queued', { task: taskId, count })),
    subscribe(events, 'task.started', ({ taskId, count }) => log.info('task processing', { task: taskId, count })),
    subscribe(events, 'task.recovered', ({ taskId, inFlight }) => log.info('recovering task', { task: taskId, in_flight: inFlight })),
    subscribe(events, 'image.submitted', ({ taskId, index, worker, promptId, attempt, mode }) =>
      log.debug(mode === 'attach' ? 'image re-attached' : 'image assigned', { task: taskId, index, worker, prompt_id: promptId, attempt }),
    ),
    subscribe(events, 'image.resubmitted', ({ taskId, index, worker, reason }) => log.warn('image will be resubmitted', { task: taskId, index, worker, reason })),
    subscribe(events, 'image.ready', ({ taskId, index, worker, cached }) => log.info('image ready', { task: taskId, index, worker, cached })),
    subscribe(events, 'image.failed', ({ taskId, index, worker, error }) => log.error('image failed', { task: taskId, index, worker, error })),
    subscribe(events, 'task.finished', ({ taskId, status, error, was }) =>
      log.info(`task ${status}`, { task: taskId, ...(error ? { error } : {}), ...(was === 'pending' ? { was } : {}) }),
    ),
    // worker.up / worker.down: the pool logs each change of a server's state itself.
  ];
  return () => {
    for (const stop of stops) stop();
  };
}
