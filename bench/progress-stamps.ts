/**
 * A simulator that stamps when it sends each `progress` message of one measured prompt (its
 * `onMessageSent` hook), the start of every frame delay the fan-out benchmarks measure. Times are
 * bench/ws-frame-delays.ts's `clockNow()`, comparable with the subscribers' receive times.
 */
import { join } from 'node:path';
import { startSimulator, type Simulator } from '../simulator/server.js';
import { clockNow } from './ws-frame-delays.js';

/** The simulator and the stamps of the prompt being measured. */
export interface StampingSimulator {
  sim: Simulator;
  /**
   * Measures `promptId` from now on (the prompts measured before are dropped): returns the map
   * of step -> when the simulator sent that step's first `progress`, filled as they are sent.
   */
  measure(promptId: string): Map<number, number>;
}

/** Starts a simulator at `stepMs` per step, its files under `dir`/comfyui. */
export async function startStampingSimulator(dir: string, stepMs: number): Promise<StampingSimulator> {
  let measured = '';
  let sentAt = new Map<number, number>();
  const sim = await startSimulator({
    port: 0,
    stepMs,
    baseDir: join(dir, 'comfyui'),
    onMessageSent: (text) => {
      if (!text.startsWith('{"type": "progress"')) return;
      const at = clockNow();
      const { data } = JSON.parse(text) as { data: { value: number; prompt_id: string } };
      if (data.prompt_id === measured && !sentAt.has(data.value)) sentAt.set(data.value, at);
    },
  });
  return {
    sim,
    measure(promptId) {
      measured = promptId;
      sentAt = new Map();
      return sentAt;
    },
  };
}
