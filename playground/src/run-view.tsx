/**
 * One task, live: read with `task(id)`, then followed frame by frame (graphql-ws, SSE as the
 * fallback) until it ends, then read again for its stored images. Shows the overall state, the
 * queue position, the seed, a cell per image and Cancel; a finished task shows its results grid.
 */
import type { KontextClient } from '@kontext-gateway/sdk';
import { useEffect, useState } from 'preact/hooks';
import { isAuthError, errorOfThrown } from './api-errors';
import { ImageCell } from './image-cell';
import { watchTask, type Transport } from './live';
import { ResultViewer } from './result-viewer';
import { applyFrame, formatSeconds, isFinal, mergeTask, runFromTask, type RunState } from './run-state';

/** Props of {@link RunView}. */
export interface RunViewProps {
  /** The SDK client; a new one (another API key) starts the watch again. */
  client: KontextClient;
  taskId: string;
  /** The task changed in a way the recent list shows (it ended). */
  onEnded: () => void;
  /** The key was refused. */
  onAuthError: (message: string) => void;
}

const STATUS_TEXT: Record<string, string> = {
  PENDING: 'Waiting',
  PROCESSING: 'Running',
  COMPLETED: 'Done',
  FAILED: 'Failed',
  CANCELLED: 'Cancelled',
};

/** The live view of one task. */
export function RunView({ client, taskId, onEnded, onAuthError }: RunViewProps) {
  const [run, setRun] = useState<RunState | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [transport, setTransport] = useState<Transport | null>(null);
  const [cancelError, setCancelError] = useState<string | null>(null);
  const [cancelling, setCancelling] = useState(false);
  const [viewing, setViewing] = useState<number | null>(null);

  useEffect(() => {
    const stop = new AbortController();
    setRun(null);
    setProblem(null);
    setTransport(null);
    setCancelError(null);
    setViewing(null);
    const follow = async () => {
      const task = await client.task(taskId);
      if (stop.signal.aborted) return;
      if (!task) return setProblem('No such task (or it belongs to another API key).');
      let state = runFromTask(task);
      setRun(state);
      if (isFinal(task.status)) return;
      for await (const { frame, receivedAt, transport: via } of watchTask(client, taskId, stop.signal)) {
        if (stop.signal.aborted) return;
        state = applyFrame(state, frame, receivedAt);
        setRun(state);
        setTransport(via);
      }
      if (stop.signal.aborted) return;
      const final = await client.task(taskId);
      if (stop.signal.aborted) return;
      if (final) setRun(mergeTask(state, final));
      onEnded();
    };
    follow().catch((err: unknown) => {
      if (stop.signal.aborted) return;
      if (isAuthError(err)) onAuthError(errorOfThrown(err).apiKey ?? String(err));
      setProblem(err instanceof Error ? err.message : String(err));
    });
    return () => stop.abort();
  }, [client, taskId]);

  const cancel = async () => {
    setCancelling(true);
    setCancelError(null);
    try {
      await client.cancel(taskId);
    } catch (err) {
      setCancelError(err instanceof Error ? err.message : String(err));
    } finally {
      setCancelling(false);
    }
  };

  if (problem && !run) return <section class="card run" aria-label="Task"><p class="error" role="alert">{problem}</p></section>;
  if (!run) return <section class="card run" aria-label="Task" aria-busy="true"><p class="muted">Loading the task…</p></section>;
  const viewed = viewing !== null ? run.images[viewing]?.result : null;
  return (
    <section class="card run" aria-label="Task">
      <header class="run-head">
        <div>
          <h2 class="run-title">{run.description}</h2>
          <p class="muted">
            <span class={`badge ${run.status.toLowerCase()}`}>{STATUS_TEXT[run.status] ?? run.status}</span> {run.progress}%
            {run.status === 'PENDING' && run.queuePosition ? ` · position ${run.queuePosition} in the queue` : ''}
            {run.status === 'PROCESSING' && run.etaSeconds !== null ? ` · about ${formatSeconds(run.etaSeconds)} left` : ''}
            {run.seed !== null ? ` · seed ${run.seed}` : ''}
            {transport && !isFinal(run.status) ? ` · live over ${transport === 'sse' ? 'SSE' : 'graphql-ws'}` : ''}
          </p>
        </div>
        {!isFinal(run.status) && (
          <div class="cancel">
            <button type="button" onClick={cancel} disabled={cancelling} aria-describedby={cancelError ? 'cancel-error' : undefined}>
              Cancel
            </button>
            {cancelError && <p class="error" id="cancel-error" role="alert">{cancelError}</p>}
          </div>
        )}
      </header>
      {run.error && <p class="error" role="alert">{run.error}</p>}
      {problem && <p class="error" role="alert">{problem}</p>}
      <ul class={`grid n${run.images.length}`} aria-label="Images">
        {run.images.map((image) => (
          <ImageCell key={image.index} image={image} taskId={run.taskId} status={run.status} queuePosition={run.queuePosition} onOpen={setViewing} />
        ))}
      </ul>
      {viewed && <ResultViewer taskId={run.taskId} image={viewed} onClose={() => setViewing(null)} />}
    </section>
  );
}
