/**
 * Webhooks across a crash, with real processes: the service is SIGKILLed while the receiver is
 * down, and its events still arrive after the restart, with the webhook-ids they had before. The
 * `kontext webhooks` commands are run as an operator would.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { newWebhookSecret } from '../src/webhooks/signing.js';
import { kontext } from './helpers/kontext.js';
import { processScope } from './helpers/process-scope.js';
import { startServiceProcess, startSimulatorProcess } from './helpers/processes.js';
import { postGenerate, until, waitForStatus } from './helpers/stack.js';
import { startReceiver, type Receiver } from './helpers/webhook-receiver.js';

const scope = processScope('kontext-webhooks-');
const { track } = scope;

interface ListedEvent {
  id: string;
  taskId: string;
  type: string;
  status: string;
  attempts: number;
  lastError: string | null;
}

describe('webhooks across a crash', () => {
  it('a receiver down while the service is SIGKILLed and restarted still gets every event, in order, with the same webhook-ids', async () => {
    const secret = newWebhookSecret();
    // A free port for the receiver, which is down until after the crash.
    const probe = await startReceiver(secret);
    const port = probe.port;
    await probe.close();
    let receiver: Receiver | undefined;
    try {
      const sim = await track(startSimulatorProcess(['--port', '0', '--step-ms', '10', '--base-dir', join(scope.dir, 'comfyui')]));
      const env = { DATA_DIR: join(scope.dir, 'data'), COMFYUI_URL: sim.url, WEBHOOK_URL: `http://127.0.0.1:${port}/all`, WEBHOOK_SECRET: secret };
      const cli = async (...args: string[]) => {
        const run = await kontext(scope.dir, ['webhooks', ...args], env);
        expect(run.stderr).toBe('');
        expect(run.code).toBe(0);
        return run.stdout;
      };
      const list = async (...args: string[]) => JSON.parse(await cli('list', '--json', ...args)) as ListedEvent[];

      const first = await track(startServiceProcess(env));
      const res = await postGenerate(first.url, { description: 'webhooks survive', count: '2', steps: '4', size: '256x256' });
      const id = ((await res.json()) as { task_id: string }).task_id;
      await waitForStatus(first.url, id, ['completed']);
      // The first event was tried (the receiver is down); the later ones wait behind it.
      await until('a failed attempt', async () => (await list('--task', id)).some((e) => e.attempts > 0), 30_000);
      await first.kill('SIGKILL');

      const before = (await list('--task', id)).reverse();
      expect(before.map((e) => e.type)).toEqual(['task.start', 'task.output', 'task.output', 'task.completed']);
      expect(before.every((e) => e.status === 'pending')).toBe(true);
      expect(before[0]!.attempts).toBeGreaterThan(0);
      expect(before[0]!.lastError).toMatch(/ECONNREFUSED/);
      expect(before.slice(1).every((e) => e.attempts === 0)).toBe(true);
      expect((await list('--failed')).map((e) => e.id)).toEqual([before[0]!.id]);

      receiver = await startReceiver(secret, port);
      const second = await track(startServiceProcess(env));
      await until('every event', () => receiver!.received.length >= 4, 60_000);
      const got = receiver.received;
      expect(got.every((r) => r.error === undefined && r.status === 200)).toBe(true);
      expect(got.map((r) => r.payload!.type)).toEqual(before.map((e) => e.type));
      expect(got.map((r) => r.id)).toEqual(before.map((e) => e.id));
      expect(got.every((r) => r.payload!.data['task_id'] === id)).toBe(true);
      await until('all delivered', async () => (await list('--task', id)).every((e) => e.status === 'delivered'), 30_000);
      expect(await list('--failed')).toEqual([]);

      // The operator's tools: the secret receivers verify with, and a redelivery with the same id.
      expect((await cli('secret')).trim()).toBe(secret);
      const completed = before[3]!.id;
      expect(await cli('redeliver', completed)).toMatch(new RegExp(`${completed} \\(task.completed of task ${id}\\) is due again`));
      await until('the redelivery', () => receiver!.received.length >= 5, 30_000);
      expect(receiver.received[4]).toMatchObject({ id: completed, status: 200, error: undefined });
      const missing = await kontext(scope.dir, ['webhooks', 'redeliver', 'msg_nope'], env);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/no webhook event msg_nope/);
      await second.kill('SIGTERM');
    } finally {
      await receiver?.close();
    }
  }, 180_000);
});
