/**
 * Webhook deliveries per second to a local receiver that verifies every signature with the
 * `standardwebhooks` library. Events are put into the outbox of a SQLite database (as the
 * transitions would) and the deliverer sends them: lease, sign, POST, record, 16 at a time. The
 * baseline is the same receiver and the same signed bodies POSTed by a bare undici loop with the
 * same concurrency, with no database at all, measured in the same run. A second row sends the
 * events of one task, which go one after the other (each waits for the one before it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { openDatabase, type Db } from '../src/db/database.js';
import type { NewWebhook } from '../src/db/types.js';
import { insertWebhooks } from '../src/db/webhooks.js';
import { WebhookDeliverer } from '../src/webhooks/deliverer.js';
import { newWebhookId } from '../src/webhooks/recorder.js';
import { WebhookSender } from '../src/webhooks/sender.js';
import { newWebhookSecret, WebhookSigner } from '../src/webhooks/signing.js';
import { startReceiver, type Receiver } from '../test/helpers/webhook-receiver.js';
import type { BenchRow } from './table.js';

const EVENTS = 2000;
const IN_ORDER = 300;
const CONCURRENCY = 16;

/** A body of the size a task.completed event of a 2-image task has. */
function payload(taskId: string): string {
  const data = {
    task_id: taskId,
    status: 'completed',
    progress: 100,
    description: 'make the sky purple and add a small red kite',
    count: 2,
    size: '1024x1024',
    steps: 20,
    guidance: 2.5,
    seed: 123456789,
    images: [0, 1].map((i) => `http://127.0.0.1:8000/api/image/${taskId}?index=${i}&exp=1767225600&sig=${'x'.repeat(43)}`),
    result_path: [0, 1].map((i) => `images/${taskId}/${i}.png`),
    error_message: null,
    queue_position: null,
    created_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
  };
  return JSON.stringify({ type: 'task.completed', timestamp: new Date().toISOString(), data });
}

/** `n` pending events to `url`: each of its own task, or all of one task (in order). */
function events(n: number, url: string, oneTask: boolean): NewWebhook[] {
  const at = new Date().toISOString();
  return Array.from({ length: n }, (_, i) => {
    const task = oneTask ? 'task-one' : `task-${i}`;
    return { id: newWebhookId(), task_id: task, ordinal: oneTask ? i + 1 : 1, url, source: 'task' as const, type: 'task.completed', payload: payload(task), status: 'pending' as const, next_attempt_at: at, retry_since: at, created_at: at };
  });
}

/** Delivers `rows` from the outbox; returns deliveries per second. */
async function throughOutbox(db: Db, receiver: Receiver, signer: WebhookSigner, rows: NewWebhook[]): Promise<number> {
  for (let i = 0; i < rows.length; i += 500) await insertWebhooks(db, rows.slice(i, i + 500));
  const sender = new WebhookSender({ policy: { allowHosts: ['127.0.0.1'] } });
  const before = receiver.received.length;
  let delivered = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const deliverer = new WebhookDeliverer({
    db,
    sender,
    signer: async () => signer,
    instance: 'bench',
    concurrency: CONCURRENCY,
    onAttempt: (outcome) => {
      if (outcome !== 'delivered') throw new Error(`a bench delivery ended ${outcome}`);
      if (++delivered === rows.length) done();
    },
  });
  const started = performance.now();
  deliverer.start();
  await all;
  const seconds = (performance.now() - started) / 1000;
  await deliverer.stop();
  await sender.close();
  const got = receiver.received.slice(before);
  if (got.length !== rows.length || got.some((r) => r.error !== undefined)) throw new Error('the receiver did not verify every delivery');
  return rows.length / seconds;
}

/** The same bodies, signed, POSTed by a bare loop with the same concurrency; returns requests per second. */
async function bare(receiver: Receiver, signer: WebhookSigner, rows: NewWebhook[]): Promise<number> {
  const agent = new Agent();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < rows.length) {
        const row = rows[next++]!;
        const res = await request(`${receiver.url}/bare`, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': 'application/json', ...signer.headers(row.id, row.payload) },
          body: row.payload,
        });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`bare POST: ${res.statusCode}`);
      }
    }),
  );
  const rate = rows.length / ((performance.now() - started) / 1000);
  await agent.close();
  return rate;
}

/** Runs the webhook rows. */
export async function benchWebhooks(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kontext-bench-webhooks-'));
  const secret = newWebhookSecret();
  const receiver = await startReceiver(secret);
  const db = await openDatabase({ file: join(dir, 'kontext.db') });
  const signer = new WebhookSigner(secret);
  try {
    const url = `${receiver.url}/hook`;
    await bare(receiver, signer, events(200, url, false)); // warm-up
    const baseline = await bare(receiver, signer, events(EVENTS, url, false));
    const outbox = await throughOutbox(db, receiver, signer, events(EVENTS, url, false));
    const serial = await throughOutbox(db, receiver, signer, events(IN_ORDER, url, true));
    return [
      {
        name: `webhook deliveries, ${EVENTS} events of separate tasks (SQLite outbox, ${CONCURRENCY} in flight)`,
        figure: `${outbox.toFixed(0)}/s`,
        baseline: `${baseline.toFixed(0)}/s bare undici POSTs`,
        ratio: outbox / baseline,
        ratioLabel: 'of bare',
        note: 'a lease, a signature and a recorded outcome per event (SQLite writes); the receiver verifies each',
      },
      {
        name: `webhook deliveries, ${IN_ORDER} events of one task (in order)`,
        figure: `${serial.toFixed(0)}/s`,
        baseline: `${baseline.toFixed(0)}/s bare undici POSTs`,
        ratio: serial / baseline,
        ratioLabel: 'of bare',
        note: 'one at a time: each waits for the one before it to be recorded delivered',
      },
    ];
  } finally {
    await db.destroy();
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  }
}

