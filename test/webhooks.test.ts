/**
 * Webhooks end to end: the real service on port 0 with the ComfyUI simulator, a real receiver
 * (node:http) verifying every delivery with the `standardwebhooks` library, and a resolver the
 * test controls to play DNS rebinding.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../src/auth/create-api-key.js';
import { listWebhooks } from '../src/db/webhooks.js';
import type { WebhookRow } from '../src/db/types.js';
import { loadWebhookSecret } from '../src/webhooks/signing.js';
import type { ResolvedAddress } from '../src/webhooks/target-check.js';
import { CSRF, multipart } from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, waitForStatus, type Stack } from './helpers/stack.js';
import { startReceiver, type Receiver } from './helpers/webhook-receiver.js';

/** What the test's resolver answers; other names do not resolve. */
const names = new Map<string, string>();
const resolve = async (host: string): Promise<ResolvedAddress[]> => {
  const address = names.get(host);
  if (!address) throw Object.assign(new Error(`no such name ${host}`), { code: 'ENOTFOUND' });
  return [{ address, family: address.includes(':') ? 6 : 4 }];
};

let stack: Stack;
let receiver: Receiver;
let secret: string;

beforeAll(async () => {
  stack = await startStack({
    config: { webhookAllowHosts: ['127.0.0.1'] },
    app: { webhooks: { resolve, firstRetryMs: 100, pollMs: 200 } },
  });
  // What `kontext webhooks secret` prints: the generated secret every replica shares.
  secret = await loadWebhookSecret(stack.app.db, undefined);
  receiver = await startReceiver(secret);
}, 60_000);

afterAll(async () => {
  await receiver?.close();
  await stack?.close();
});

/** Posts the legacy form with webhook fields; `headers` e.g. a Bearer key. */
async function postForm(fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries({ description: 'a webhook test', steps: '2', ...fields })) form.set(k, v);
  form.set('referenceImage', new Blob([(await makeImage('png', 320, 240)) as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'ref.png');
  return fetch(`${stack.app.url}/generate-image`, { method: 'POST', body: form, headers });
}

async function createTask(fields: Record<string, string>, headers: Record<string, string> = {}): Promise<string> {
  const res = await postForm(fields, headers);
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { task_id: string }).task_id;
}

const receivedFor = (taskId: string) => receiver.received.filter((r) => r.payload?.data['task_id'] === taskId);
const rowsOf = (taskId: string): Promise<WebhookRow[]> => listWebhooks(stack.app.db, { taskId });

describe('webhooks', () => {
  it('a 2-image task with every event sends start, output, output, completed in order, each signed and verified', async () => {
    receiver.respond = () => 200;
    const id = await createTask({ count: '2', webhook: `${receiver.url}/hook?x=1`, webhook_events_filter: 'start, OUTPUT,completed' });
    await waitForStatus(stack.app.url, id, ['completed']);
    await until('four deliveries', () => receivedFor(id).length >= 4);
    const got = receivedFor(id);
    expect(got.every((r) => r.error === undefined)).toBe(true);
    expect(got.map((r) => r.payload!.type)).toEqual(['task.start', 'task.output', 'task.output', 'task.completed']);
    expect(new Set(got.map((r) => r.id)).size).toBe(4);
    expect(got.map((r) => (r.payload!.data['images'] as string[]).length)).toEqual([0, 1, 2, 2]);
    expect(got[0]!.payload!.data).toMatchObject({ task_id: id, status: 'processing', count: 2 });
    const last = got[3]!.payload!.data;
    expect(last).toMatchObject({ task_id: id, status: 'completed', progress: 100, queue_position: null });
    // The REST body of the task, as task-status shows it now (image URLs on the service's own base).
    const status = (await (await fetch(`${stack.app.url}/api/task-status/${id}`)).json()) as Record<string, unknown>;
    expect(last).toEqual({ ...status, updated_at: last['updated_at'] });
    expect(Date.parse(got[3]!.payload!.timestamp)).toBeGreaterThan(0);
    const rows = await rowsOf(id);
    expect(rows.every((r) => r.status === 'delivered' && r.attempts === 1)).toBe(true);
  });

  it('a receiver failing twice then accepting gets the same webhook-id each time', async () => {
    receiver.respond = (_n, got) => (receivedFor(String(got.payload?.data['task_id'])).length < 2 ? 500 + receivedFor(String(got.payload?.data['task_id'])).length * 3 : 200);
    const id = await createTask({ webhook: `${receiver.url}/flaky` });
    await until('three attempts', () => receivedFor(id).length >= 3);
    await until('delivered', async () => (await rowsOf(id))[0]?.status === 'delivered');
    const got = receivedFor(id);
    expect(got.map((r) => r.status)).toEqual([500, 503, 200]);
    expect(got.every((r) => r.error === undefined && r.payload?.type === 'task.completed')).toBe(true);
    expect(new Set(got.map((r) => r.id)).size).toBe(1);
    // A new timestamp on each attempt, signed again (receivers refuse stale ones).
    expect(got.map((r) => r.headers['webhook-signature'])).toHaveLength(3);
    const [row] = await rowsOf(id);
    expect(row).toMatchObject({ id: got[0]!.id, status: 'delivered', attempts: 3, last_status: 200, last_error: null });
  });

  it('a 410 stops retrying', async () => {
    receiver.respond = () => 410;
    const id = await createTask({ webhook: `${receiver.url}/gone` });
    await until('given up', async () => (await rowsOf(id))[0]?.status === 'failed');
    // Retries would come within 100-200 ms: a second is several of them.
    await new Promise((r) => setTimeout(r, 1000));
    expect(receivedFor(id)).toHaveLength(1);
    const [row] = await rowsOf(id);
    expect(row).toMatchObject({ status: 'failed', attempts: 1, last_status: 410 });
    expect(row!.last_error).toMatch(/^HTTP 410/);
  });

  it('refuses unsafe targets when the task is created: REST 422 naming webhook, GraphQL ValidationError on webhook', async () => {
    receiver.respond = () => 200;
    names.set('intranet.test', '192.168.1.20');
    const before = await stack.app.db.selectFrom('tasks').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const refused: [string, RegExp][] = [
      ['ftp://example.com/hook', /http or https/],
      ['not a url', /absolute http or https URL/],
      ['http://127.0.0.2:9/hook', /127\.0\.0\.2, a loopback address/],
      ['http://10.1.2.3/hook', /private/],
      ['http://169.254.169.254/latest/meta-data', /metadata/],
      ['http://[::1]:8080/', /::1, a loopback/],
      ['http://[fe80::1]/', /link-local/],
      ['http://intranet.test/hook', /intranet\.test resolves to 192\.168\.1\.20, a private address/],
      ['https://nowhere.test/hook', /does not resolve/],
    ];
    for (const [url, msg] of refused) {
      const res = await postForm({ webhook: url });
      expect(res.status, url).toBe(422);
      const { detail } = (await res.json()) as { detail: { loc: string[]; msg: string; type: string }[] };
      expect(detail, url).toHaveLength(1);
      expect(detail[0]!.loc).toEqual(['body', 'webhook']);
      expect(detail[0]!.msg, url).toMatch(msg);
    }
    const badFilter = await postForm({ webhook: `${receiver.url}/x`, webhook_events_filter: 'start,finish' });
    expect(badFilter.status).toBe(422);
    expect(((await badFilter.json()) as { detail: { loc: string[] }[] }).detail[0]!.loc).toEqual(['body', 'webhook_events_filter']);

    const query = `mutation ($input: GenerateInput!) { generate(input: $input) { __typename ... on ValidationError { field message } ... on GenerateSuccess { task { id } } } }`;
    for (const webhook of ['http://169.254.169.254/', 'http://intranet.test/', 'gopher://example.com/']) {
      const res = await fetch(`${stack.app.url}/graphql`, {
        method: 'POST',
        headers: CSRF,
        body: multipart(query, { description: 'refused', webhook, webhookEvents: ['START', 'COMPLETED'] }, await makeImage('png', 320, 240)),
      });
      const body = (await res.json()) as { data: { generate: { __typename: string; field?: string } } };
      expect(body.data.generate, webhook).toMatchObject({ __typename: 'ValidationError', field: 'webhook' });
    }
    const after = await stack.app.db.selectFrom('tasks').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n));
    // GraphQL takes an allowed target, with its events (lower-case in the stored filter).
    const ok = await fetch(`${stack.app.url}/graphql`, {
      method: 'POST',
      headers: CSRF,
      body: multipart(query, { description: 'allowed', webhook: `${receiver.url}/gql`, webhookEvents: ['START', 'COMPLETED'] }, await makeImage('png', 320, 240)),
    });
    const created = (await ok.json()) as { data: { generate: { __typename: string; task: { id: string } } } };
    expect(created.data.generate.__typename).toBe('GenerateSuccess');
    const task = await stack.app.db.selectFrom('tasks').select(['webhook_url', 'webhook_events']).where('id', '=', created.data.generate.task.id).executeTakeFirstOrThrow();
    expect(task).toEqual({ webhook_url: `${receiver.url}/gql`, webhook_events: 'start,completed' });
    await until('its two events', () => receivedFor(created.data.generate.task.id).length === 2);
    expect(receivedFor(created.data.generate.task.id).map((r) => r.payload?.type)).toEqual(['task.start', 'task.completed']);
  });

  it('checks the address again at delivery: a name that now resolves to a private address is refused, and delivered once it resolves back', async () => {
    receiver.respond = () => 200;
    names.set('hooks.test', '127.0.0.1');
    // Delivered through the name: the connection goes to the address the check resolved (no real DNS knows hooks.test).
    const first = await createTask({ webhook: `http://hooks.test:${receiver.port}/rebind` });
    await until('the first task delivered', () => receivedFor(first).length === 1);

    const second = await createTask({ webhook: `http://hooks.test:${receiver.port}/rebind` });
    names.set('hooks.test', '10.9.8.7'); // rebound before its completed event is sent
    await waitForStatus(stack.app.url, second, ['completed']);
    await until('a refused attempt', async () => ((await rowsOf(second))[0]?.attempts ?? 0) >= 2);
    const [row] = await rowsOf(second);
    expect(row).toMatchObject({ status: 'pending', last_status: null });
    expect(row!.last_error).toMatch(/hooks\.test resolves to 10\.9\.8\.7, a private address/);
    expect(receivedFor(second)).toHaveLength(0);
    const metrics = await (await fetch(`${stack.app.url}/metrics`)).text();
    expect(metrics).toMatch(/kontext_webhook_deliveries_total\{outcome="refused"\} [1-9]/);

    names.set('hooks.test', '127.0.0.1');
    await until('delivered after all', () => receivedFor(second).length === 1);
    expect(receivedFor(second)[0]!.id).toBe(row!.id);
  });
  it("(last: a key ends open mode) by default only completed; a task with a key gets signed image URLs that fetch the image", async () => {
    receiver.respond = () => 200;
    const { key } = await createApiKey(stack.app.db, { name: 'hooks', scopes: ['generate', 'read'] });
    {
      const id = await createTask({ webhook: `${receiver.url}/default` }, { authorization: `Bearer ${key}` });
      await until('the completed event', () => receivedFor(id).length >= 1);
      await waitForStatus(stack.app.url, id, ['completed']).catch(() => undefined); // open mode is over: task-status needs the key
      const got = receivedFor(id);
      expect(got.map((r) => r.payload?.type)).toEqual(['task.completed']);
      const images = got[0]!.payload!.data['images'] as string[];
      expect(images).toHaveLength(1);
      expect(images[0]).toMatch(/&exp=\d+&sig=/);
      const image = await fetch(images[0]!);
      expect(image.status).toBe(200);
      expect(image.headers.get('content-type')).toMatch(/^image\//);
    }
  });
});
