/** A process's memory as Linux reports it (/proc/<pid>/status), for benchmarks that run servers as child processes. */
import { readFile } from 'node:fs/promises';

/** Resident (`VmRSS`) and peak resident (`VmHWM`) memory of process `pid`, in bytes. */
export async function processMemory(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}
