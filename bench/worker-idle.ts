/**
 * Where a simulator's time went, from its own history: each prompt's `execution_start` and
 * `execution_success` timestamps (ms, as ComfyUI records them). The gaps between one prompt's end
 * and the next one's start are the GPU idling while work was left.
 */

/** One worker's run, read from its history. */
export interface WorkerTimeline {
  /** Prompts it ran. */
  prompts: number;
  /** Sum of the gaps between consecutive prompts, ms. */
  idleBetweenMs: number;
  /** When its first prompt started, epoch ms (NaN for none). */
  firstStart: number;
  /** When its last prompt ended, epoch ms (NaN for none). */
  lastEnd: number;
}

type HistoryJson = Record<string, { status?: { messages?: [string, { timestamp?: number }][] } }>;

/** A measured run: its length and its ends, epoch ms (comparable with the histories' timestamps). */
export interface Timed {
  ms: number;
  startedAt: number;
  endedAt: number;
}

/**
 * Ms from the start of `run` to the first prompt starting (`head`), to the last worker's first
 * prompt starting (`lastHead`: with the work spread evenly, the latest start bounds the run, not
 * the earliest), and from the last prompt ending to the end of `run` (`tail`).
 */
export function headAndTail(run: Timed, workers: readonly WorkerTimeline[]): { head: number; lastHead: number; tail: number } {
  const starts = workers.map((w) => w.firstStart);
  return { head: Math.min(...starts) - run.startedAt, lastHead: Math.max(...starts) - run.startedAt, tail: run.endedAt - Math.max(...workers.map((w) => w.lastEnd)) };
}

/** Reads `baseUrl`'s /history and sums the idle gaps between its prompts. */
export async function workerTimeline(baseUrl: string): Promise<WorkerTimeline> {
  const history = (await (await fetch(`${baseUrl}/history`)).json()) as HistoryJson;
  const spans: [number, number][] = [];
  for (const entry of Object.values(history)) {
    const at = (name: string) => entry.status?.messages?.find(([type]) => type === name)?.[1].timestamp;
    const start = at('execution_start');
    const end = at('execution_success');
    if (start !== undefined && end !== undefined) spans.push([start, end]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let idleBetweenMs = 0;
  for (let i = 1; i < spans.length; i++) idleBetweenMs += Math.max(0, spans[i]![0] - spans[i - 1]![1]);
  return { prompts: spans.length, idleBetweenMs, firstStart: spans[0]?.[0] ?? Number.NaN, lastEnd: spans.length ? Math.max(...spans.map((x) => x[1])) : Number.NaN };
}
