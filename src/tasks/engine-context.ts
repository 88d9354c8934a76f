/** What every part of the engine is handed: the database and its transitions, the frame and event channels, the servers. */
import type { Db } from '../db/database.js';
import type { Logger } from '../log.js';
import type { ActiveTask } from './active-task.js';
import type { EngineEventBus } from './events.js';
import type { FramePublisher } from './frame-publisher.js';
import type { Transitions } from './transitions/index.js';
import type { WorkerPool } from './worker-pool.js';

export interface EngineContext {
  db: Db;
  /** The only way a part changes a task's or an image's status. */
  transitions: Transitions;
  publisher: FramePublisher;
  events: EngineEventBus;
  pool: WorkerPool;
  log: Logger;
  /** The engine's processing tasks, by id. */
  active: Map<string, ActiveTask>;
  /** This instance's name in claims: its writes to a task hold only while it holds the claim. */
  instance: string;
}
