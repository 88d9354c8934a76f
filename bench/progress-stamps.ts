/**
 * A simulator in a process of its own that stamps when it sends each `progress` message of one
 * measured prompt (its `onMessageSent` hook), the start of every frame delay the fan-out benchmarks
 * measure. Times are bench/ws-frame-delays.ts's `clockNow()` (the machine's monotonic clock),
 * comparable with the subscribers' receive times in the bench process. The child is
 * bench/stamping-simulator-child.ts; requests and answers go over IPC, one at a time.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** What the bench asks the child. */
export type StampsRequest = { type: 'measure'; promptId: string } | { type: 'stamps' } | { type: 'close' };
/** What the child answers (`listening` once, at start). */
export type StampsReply = { type: 'listening'; url: string } | { type: 'measuring' } | { type: 'stamps'; stamps: [number, number][] };

/** The simulator process and the stamps of the prompt being measured. */
export interface StampingSimulator {
  /** The simulator's base URL. */
  url: string;
  /** Measures `promptId` from now on; the stamps of the prompt measured before are dropped. */
  measure(promptId: string): Promise<void>;
  /** Step -> when the simulator sent that step's first `progress`, for the measured prompt so far. */
  stamps(): Promise<Map<number, number>>;
  /** Stops the simulator and waits for its process to exit. */
  close(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./stamping-simulator-child.ts', import.meta.url));
/** Longest wait for any answer of the child. */
const ANSWER_MS = 30_000;

/** Starts a simulator process at `stepMs` per step, its files under `dir`/comfyui. */
export async function startStampingSimulator(dir: string, stepMs: number): Promise<StampingSimulator> {
  // fork passes on this process's flags: tsx's loader and the workspace condition.
  const child = fork(CHILD, [dir, String(stepMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const next = <T extends StampsReply['type']>(type: T): Promise<Extract<StampsReply, { type: T }>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`the stamping simulator sent no '${type}' within ${ANSWER_MS} ms`)), ANSWER_MS);
      const onMessage = (m: StampsReply) => m.type === type && done(undefined, m as Extract<StampsReply, { type: T }>);
      const onExit = (code: number | null) => done(new Error(`the stamping simulator exited (${code}) before its '${type}'`));
      function done(err?: Error, m?: Extract<StampsReply, { type: T }>) {
        clearTimeout(timer);
        child.off('message', onMessage).off('exit', onExit);
        if (err) reject(err);
        else resolve(m!);
      }
      child.on('message', onMessage).once('exit', onExit);
    });
  const ask = <T extends StampsReply['type']>(request: StampsRequest, type: T) => {
    const answer = next(type);
    child.send(request);
    return answer;
  };
  const { url } = await next('listening').catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    url,
    measure: async (promptId) => void (await ask({ type: 'measure', promptId }, 'measuring')),
    stamps: async () => new Map((await ask({ type: 'stamps' }, 'stamps')).stamps),
    async close() {
      if (child.connected) child.send({ type: 'close' } satisfies StampsRequest);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
