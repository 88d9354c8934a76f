/**
 * A task's progress over Server-Sent Events (GraphQL over SSE, as the service's Yoga speaks it):
 * the fallback when graphql-ws cannot connect (a proxy that drops WebSocket upgrades, say). The
 * frames are the SDK's `TaskProgress`; the selection below must match the SDK's subscription.
 */
import { KontextError, type TaskProgress } from '@kontext-gateway/sdk';

const TASK_PROGRESS = `subscription TaskProgress($taskId: ID!) {
  taskProgress(taskId: $taskId) {
    taskId seq status progress imageIndex step totalSteps node queuePosition etaSeconds preview error
    image { index url width height seed contentType bytes }
  }
}`;

interface Reply {
  data?: { taskProgress?: TaskProgress } | null;
  errors?: { message: string }[];
}

/** The task's frames over SSE until the final one; `signal` ends the stream early. */
export async function* watchOverSse(taskId: string, apiKey: string, signal: AbortSignal): AsyncGenerator<TaskProgress, void, undefined> {
  const res = await fetch('/graphql', {
    method: 'POST',
    headers: {
      accept: 'text/event-stream',
      'content-type': 'application/json',
      ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
    },
    body: JSON.stringify({ query: TASK_PROGRESS, variables: { taskId } }),
    signal,
  });
  if (!res.ok || !res.body) throw new KontextError(`/graphql answered HTTP ${res.status} to the progress stream`, res.status, []);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let last = -1;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n/g, '\n');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: ?(.*)$/m.exec(block)?.[1] ?? 'next';
        if (event === 'complete') return;
        const data = [...block.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join('\n');
        if (event !== 'next' || !data) continue; // keep-alive comments
        const reply = JSON.parse(data) as Reply;
        if (reply.errors?.length) throw new KontextError(reply.errors.map((e) => e.message).join('; '), undefined, reply.errors);
        const frame = reply.data?.taskProgress;
        if (!frame || frame.seq <= last) continue;
        last = frame.seq;
        yield frame;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
