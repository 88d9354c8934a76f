/**
 * What a server process spent on a stretch of work, for benchmarks whose servers are child processes:
 * its CPU time (Linux's /proc/<pid>/stat, any process) and, for the service, its garbage
 * collections as its own `GET /metrics` counts them (prom-client's `nodejs_gc_duration_seconds`).
 * Two service processes doing the same uploads were seen to differ by 1.7x in CPU, the slower one
 * running ~90 full collections where the other ran 2; these figures show which kind a run had.
 */
import { readFile } from 'node:fs/promises';
import { parsePrometheusText } from '../test/helpers/prometheus-text.js';

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux's usual builds). */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) process `pid` has used so far. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** A service's collections so far: full (`major`) ones, and the seconds of all kinds. */
export interface GcCounts {
  major: number;
  seconds: number;
}

/** The collections the service at `baseUrl` reports on /metrics (with this process's METRICS_TOKEN, which the service's child process inherits, if set). */
export async function gcCounts(baseUrl: string): Promise<GcCounts> {
  const token = process.env['METRICS_TOKEN'];
  const res = await fetch(`${baseUrl}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  const { samples } = parsePrometheusText(await res.text());
  const major = samples.find((m) => m.name === 'nodejs_gc_duration_seconds_count' && m.labels['kind'] === 'major')?.value ?? 0;
  const seconds = samples.filter((m) => m.name === 'nodejs_gc_duration_seconds_sum').reduce((sum, m) => sum + m.value, 0);
  return { major, seconds };
}
