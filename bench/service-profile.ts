/**
 * FANOUT_PROFILE_DIR=<dir>: the fan-out benches' service writes a CPU profile there
 * (bench/cpu-profile-preload.mjs: NODE_OPTIONS refuses --cpu-prof), and the bench writes the
 * measured window beside it, so the measured task's samples can be looked at alone.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Where profiles go; undefined when not profiling. */
export const PROFILE_DIR = process.env['FANOUT_PROFILE_DIR'];

/** The service's extra environment: the profiling preload when FANOUT_PROFILE_DIR is set, else nothing. */
export function profiledEnv(): Record<string, string> {
  return PROFILE_DIR ? { NODE_OPTIONS: '--import ./bench/cpu-profile-preload.mjs', CPU_PROFILE_DIR: PROFILE_DIR } : {};
}

/** The signal to stop the service with: SIGTERM lets a profiled one write its profile on the way out. */
export const stopSignal = (): NodeJS.Signals => (PROFILE_DIR ? 'SIGTERM' : 'SIGKILL');

/** The monotonic clock in microseconds: the clock of a V8 CPU profile's timestamps, shared by processes on one machine. */
const monotonicMicros = (): number => Number(process.hrtime.bigint() / 1000n);

/** Runs `measure` and, when profiling, writes its window as `service-<pid>.window.json` ({ from, to } in the profile's clock). */
export async function measuredWindow<T>(pid: number, measure: () => Promise<T>): Promise<T> {
  const from = monotonicMicros();
  const result = await measure();
  const to = monotonicMicros();
  if (PROFILE_DIR) await writeFile(join(PROFILE_DIR, `service-${pid}.window.json`), JSON.stringify({ from, to }));
  return result;
}
