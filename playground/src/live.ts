/**
 * A task's live frames: through the SDK over graphql-ws, or over SSE when the WebSocket cannot get
 * through. The switch happens when the socket fails, or brings no first frame (the task's current
 * state, normally milliseconds away) within FIRST_FRAME_MS; the page then stays on SSE. Refusals
 * (a bad key, an unknown task) are errors either way, never a reason to switch.
 */
import { KontextError, type KontextClient, type TaskProgress } from '@kontext-gateway/sdk';

/** How frames reach the page. */
export type Transport = 'graphql-ws' | 'sse';

/** How long graphql-ws may take to deliver the first frame before SSE is tried. */
const FIRST_FRAME_MS = 4_000;

let preferred: Transport = typeof WebSocket === 'function' ? 'graphql-ws' : 'sse';

/** A frame as the page received it: `receivedAt` is `performance.now()` when it arrived. */
export interface ReceivedFrame {
  frame: TaskProgress;
  receivedAt: number;
  transport: Transport;
}

/** The task's frames until the final one; leaving the loop (or `signal`) unsubscribes. */
export async function* watchTask(client: KontextClient, taskId: string, signal: AbortSignal): AsyncGenerator<ReceivedFrame, void, undefined> {
  let last = -1;
  if (preferred === 'graphql-ws') {
    const frames = client.watch(taskId);
    // A generator's return() waits for its pending next(): closing the socket ends that wait at once.
    // The page watches one task at a time, so nothing else shares the socket.
    const stop = () => void client.close();
    signal.addEventListener('abort', stop, { once: true });
    try {
      let first = true;
      for (;;) {
        const next = first ? await withDeadline(frames.next(), FIRST_FRAME_MS) : await frames.next();
        first = false;
        if (next === 'late') break;
        if (next.done || signal.aborted) return;
        last = next.value.seq;
        yield { frame: next.value, receivedAt: performance.now(), transport: 'graphql-ws' };
      }
    } catch (err) {
      if (isRefusal(err) || signal.aborted) throw err;
    } finally {
      signal.removeEventListener('abort', stop);
    }
    preferred = 'sse';
    stop(); // the socket may still be retrying in the background
  }
  // SSE starts again from the task's current state: frames already shown are skipped by seq.
  for await (const frame of client.watch(taskId, { transport: 'sse', signal })) {
    if (frame.seq <= last) continue;
    last = frame.seq;
    yield { frame, receivedAt: performance.now(), transport: 'sse' };
  }
}

/** The promise's value, or 'late' after `ms` (the promise is left to settle on its own). */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | 'late'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([promise, new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)))]).finally(() => clearTimeout(timer));
}

/** The server answered and said no (GraphQL errors, or graphql-ws close 4400-4499): not a transport failure. */
function isRefusal(err: unknown): boolean {
  return err instanceof KontextError && (err.errors.length > 0 || (err.closeCode !== undefined && err.closeCode >= 4400 && err.closeCode < 4500));
}
