/** Requests per second with autocannon, which runs in a worker thread so the load generator does not take the servers' event loop. */
import autocannon from 'autocannon';

/** How a rate is measured. */
export interface RateOptions {
  /** Connections kept open. @default 10 */
  connections?: number;
  /** Seconds measured, after the warm-up. @default 5 */
  durationS?: number;
  /** Seconds of warm-up, not counted. @default 1 */
  warmupS?: number;
  /** The one status every answer must have. @default any 2xx */
  status?: number;
}

/** Requests per second against `url`, cycling through `requests`; any error, timeout or other status fails it. */
export async function requestRate(url: string, requests: autocannon.Request[], options: RateOptions = {}): Promise<number> {
  const connections = options.connections ?? 10;
  const run = async (duration: number) => {
    const result = await autocannon({ url, connections, duration, workers: 1, requests });
    const expected = options.status;
    const wrong = expected === undefined ? result.non2xx : result.requests.total - (result.statusCodeStats?.[`${expected}`]?.count ?? 0);
    if (result.errors || wrong || result.timeouts) {
      throw new Error(`autocannon ${url}: ${result.errors} errors, ${wrong} answers not ${expected ?? '2xx'}, ${result.timeouts} timeouts`);
    }
    return result.requests.total / duration;
  };
  if ((options.warmupS ?? 1) > 0) await run(options.warmupS ?? 1);
  return run(options.durationS ?? 5);
}
