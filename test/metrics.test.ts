/**
 * GET /metrics: the Prometheus text format, parsed back; the counters move by exactly the work
 * done; route labels are patterns, never raw paths; METRICS_TOKEN guards the scrape.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parsePrometheusText, type Scrape } from './helpers/prometheus-text.js';
import { postGenerate, startStack, until, waitForStatus, type Stack } from './helpers/stack.js';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function scrape(url: string, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

/** The sample `name` with exactly these labels (0 when that series does not exist yet). */
function value(scraped: Scrape, name: string, labels: Record<string, string> = {}): number {
  const sample = scraped.samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels));
  return sample?.value ?? 0;
}

async function createTask(url: string, fields: Record<string, string>): Promise<string> {
  const res = await postGenerate(url, fields);
  expect(res.status).toBe(200);
  return ((await res.json()) as { task_id: string }).task_id;
}

describe('GET /metrics', () => {
  it('counts exactly the tasks and images that ended, with durations; gauges read the queue and the workers', async () => {
    stack = await startStack({ sim: { stepMs: 20 }, config: { maxConcurrentTasks: 1 } });
    const { url } = stack.app;
    const before = await scrape(url);
    expect(value(before, 'kontext_tasks_total', { status: 'completed' })).toBe(0);
    expect(before.types.get('process_resident_memory_bytes')).toBe('gauge'); // the default metrics
    expect(value(before, 'kontext_worker_up', { worker: stack.sims[0]!.url })).toBe(1);

    const running = await createTask(url, { description: 'two images', count: '2', steps: '10', size: '256x256' });
    const queued = await createTask(url, { description: 'cancelled while queued', steps: '10', size: '256x256' });
    const during = await scrape(url);
    expect(value(during, 'kontext_queue_depth') + value(during, 'kontext_tasks_processing')).toBe(2);
    expect((await fetch(`${url}/api/task/${queued}/cancel`, { method: 'POST' })).status).toBe(200);
    await waitForStatus(url, running, ['completed']);

    // Durations are observed after a read of the stored row: wait for them.
    await until('durations observed', async () => value(await scrape(url), 'kontext_image_duration_seconds_count') === 2);
    const after = await scrape(url);
    expect(value(after, 'kontext_tasks_total', { status: 'completed' })).toBe(1);
    expect(value(after, 'kontext_tasks_total', { status: 'cancelled' })).toBe(1);
    expect(value(after, 'kontext_tasks_total', { status: 'failed' })).toBe(0);
    expect(value(after, 'kontext_images_total', { status: 'completed' })).toBe(2);
    expect(value(after, 'kontext_task_duration_seconds_count')).toBe(2);
    expect(value(after, 'kontext_queue_depth')).toBe(0);
    expect(value(after, 'kontext_tasks_processing')).toBe(0);
    const busy = value(after, 'kontext_worker_busy_ratio', { worker: stack.sims[0]!.url });
    expect(busy).toBeGreaterThanOrEqual(0);
    expect(busy).toBeLessThanOrEqual(1);
    expect(value(after, 'kontext_subscribers', { transport: 'sse' })).toBe(0);
    expect(after.types.get('kontext_subscribers')).toBe('gauge');
    expect(after.types.get('kontext_webhook_deliveries_total')).toBe('counter');
    expect(after.types.get('kontext_image_duration_seconds')).toBe('histogram');
    expect(value(after, 'kontext_image_duration_seconds_sum')).toBeGreaterThan(0);
    expect(value(after, 'kontext_image_duration_seconds_bucket', { le: '+Inf' })).toBe(2);

    // Routes are patterns: task ids never become label values.
    const http = after.samples.filter((s) => s.name === 'kontext_http_request_duration_seconds_count');
    const routes = new Set(http.map((s) => s.labels.route));
    expect(routes).toContain('/api/task-status/{task_id}');
    expect(routes).toContain('/api/task/{task_id}/cancel');
    expect(routes).toContain('/generate-image');
    expect(JSON.stringify(after.samples)).not.toContain(running);
  });

  it('keeps the series count bounded whatever paths and methods a scanner tries', async () => {
    stack = await startStack();
    const { url } = stack.app;
    for (let i = 0; i < 30; i++) await fetch(`${url}/random-${i}/x?y=${i}`);
    for (let i = 0; i < 10; i++) await fetch(`${url}/api/task-status/not-a-task-${i}`);
    await fetch(`${url}/health`, { method: 'PROPFIND' });
    const http = (await scrape(url)).samples.filter((s) => s.name === 'kontext_http_request_duration_seconds_count');
    const series = http.map((s) => `${s.labels.route} ${s.labels.method} ${s.labels.status}`);
    expect(new Set(series)).toEqual(new Set(['other GET 404', '/api/task-status/{task_id} GET 404', '/health other 405']));
  });

  it('reads back what the format allows and refuses what it does not', () => {
    const read = parsePrometheusText('# HELP a_total x\n# TYPE a_total counter\na_total{route="/x",q="say \\"hi\\""} 3\nb 1.5e3 1700000000\n');
    expect(read.samples).toEqual([
      { name: 'a_total', labels: { route: '/x', q: 'say "hi"' }, value: 3 },
      { name: 'b', labels: {}, value: 1500 },
    ]);
    expect(() => parsePrometheusText('a{route=/x} 1')).toThrow(/line 1/);
    expect(() => parsePrometheusText('a 1 2 3')).toThrow(/no value/);
    expect(() => parsePrometheusText('# TYPE a sometimes')).toThrow(/unknown type/);
  });

  it('needs METRICS_TOKEN as a Bearer token when it is set', async () => {
    stack = await startStack({ config: { metricsToken: 'scrape-token-0123456789' } });
    const { url } = stack.app;
    const refused = await fetch(`${url}/metrics`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/METRICS_TOKEN/);
    expect((await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    expect(value(await scrape(url, { authorization: 'Bearer scrape-token-0123456789' }), 'kontext_queue_depth')).toBe(0);
  });
});
