/**
 * An SSE subscriber for the fan-out benchmark: the task's subscription as a POST with
 * `accept: text/event-stream`, read with node:http (lighter on the bench process than fetch's web
 * streams), its frames recorded as bench/ws-frame-delays.ts records a graphql-ws subscriber's.
 */
import { request as httpRequest, type ClientRequest } from 'node:http';
import { clockNow, frameRecorder, SUBSCRIPTION, type FrameData, type Subscriber } from './ws-frame-delays.js';

/** Subscribes to `taskId` at the GraphQL endpoint `url`; resolves once the first frame arrived. */
export async function sseSubscriber(url: string, taskId: string): Promise<Subscriber> {
  const rec = frameRecorder();
  const body = JSON.stringify({ query: SUBSCRIPTION, variables: { taskId } });
  let req: ClientRequest | undefined;
  await new Promise<void>((resolve, reject) => {
    req = httpRequest(url, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'content-length': Buffer.byteLength(body) },
    });
    req.once('error', reject);
    req.once('response', (res) => {
      if (res.statusCode !== 200) return reject(new Error(`SSE subscribe: HTTP ${res.statusCode}`));
      res.setEncoding('utf8');
      let buffer = '';
      res.on('data', (chunk: string) => {
        const at = clockNow();
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          // `event: next\ndata: <json>` as the service writes it: one slice and one parse, as a bare client's.
          if (!event.startsWith('event: next\ndata: ')) continue;
          const frame = (JSON.parse(event.slice(18)) as { data?: { taskProgress?: FrameData } }).data?.taskProgress;
          if (!frame) continue;
          resolve();
          rec.onFrame(frame, at);
        }
      });
      res.on('error', () => undefined); // destroyed by close()
    });
    req.end(body);
  });
  return { frames: rec.frames, done: rec.done, close: () => void req?.destroy() };
}
