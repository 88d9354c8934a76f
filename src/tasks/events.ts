/**
 * What the engine tells observers, typed. Logging and `kontext repair` subscribe; later, webhooks
 * and metrics. A task's events are emitted in the order its state changed (each right after the
 * transition that caused it committed).
 */
import { EventEmitter } from 'node:events';
import type { TaskStatus } from '../db/types.js';

export interface EngineEvents {
  /** A task entered the queue. */
  'task.queued': [{ taskId: string; count: number }];
  /** A task was claimed by this instance and starts processing. */
  'task.started': [{ taskId: string; count: number }];
  /** A processing task left by a previous run (or a lapsed claim) was taken over at start. */
  'task.recovered': [{ taskId: string; inFlight: number }];
  /** An image's prompt was handed to a server (`attempt` counts from 1; `attach`: followed where it already was). */
  'image.submitted': [{ taskId: string; index: number; worker: string; promptId: string; attempt: number; mode: 'run' | 'attach' }];
  /** An image goes back to the queue to run again under the same prompt id (its server went away or lost it). */
  'image.resubmitted': [{ taskId: string; index: number; worker: string; reason: string }];
  /** An image is stored and recorded. */
  'image.ready': [{ taskId: string; index: number; worker: string; cached: boolean; bytes: number }];
  /** An image failed and ended its task. */
  'image.failed': [{ taskId: string; index: number; worker: string | null; error: string }];
  /** A task ended: completed, failed (with why) or cancelled. */
  'task.finished': [{ taskId: string; status: Extract<TaskStatus, 'completed' | 'failed' | 'cancelled'>; error: string | null; was: 'pending' | 'processing' }];
  /** A ComfyUI server gets work. */
  'worker.up': [{ url: string; device: string | null }];
  /** A ComfyUI server stopped answering (its images move to the others). */
  'worker.down': [{ url: string; error: string | null }];
}

/** The engine's event emitter; `on(name, listener)` is typed by {@link EngineEvents}. */
export class EngineEventBus extends EventEmitter<EngineEvents> {}

/** Listens to one event; returns the function that stops listening. */
export function subscribe<K extends keyof EngineEvents>(events: EngineEventBus, name: K, listener: (...payload: EngineEvents[K]) => void): () => void {
  // Node's typed EventEmitter cannot relate a generic K to its listener type: the cast is only that.
  const emitter = events as unknown as EventEmitter;
  emitter.on(name, listener as (...args: unknown[]) => void);
  return () => emitter.off(name, listener as (...args: unknown[]) => void);
}
