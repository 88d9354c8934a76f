import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postGenerate, startStack, waitForStatus, type Stack, type TaskStatusBody } from './helpers/stack.js';

let stack: Stack;
let done: TaskStatusBody;
beforeAll(async () => {
  stack = await startStack({ config: { corsOrigins: ['https://app.example'] } });
  const res = await postGenerate(stack.app.url, { description: 'legacy caller', count: '2', steps: '3', size: '256x256', seed: '9' });
  done = await waitForStatus(stack.app.url, ((await res.json()) as { task_id: string }).task_id, ['completed']);
});
afterAll(async () => {
  await stack.close();
});

describe('GET /api/task-status/{task_id}', () => {
  it('has the old service fields with their meaning', () => {
    expect(done).toMatchObject({ status: 'completed', progress: 100, description: 'legacy caller', count: 2, error_message: null, seed: 9 });
    expect(done.images).toEqual([0, 1].map((i) => `${stack.app.url}/api/image/${done.task_id}?index=${i}`));
    expect(done.result_path).toHaveLength(2);
    for (const p of done.result_path) expect(p).toMatch(/images[\\/].+[\\/]\d\.png$/);
    expect(Date.parse(done.created_at as string)).toBeLessThanOrEqual(Date.parse(done.updated_at as string));
  });

  it('reads the path as URL parsing does, whether it is plain or has a query, dot segments or escapes', async () => {
    // node:http sends the path as written (fetch would normalise it first).
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        request(`${stack.app.url}${path}`, { path }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode!, body }));
        }).on('error', reject).end();
      });
    const plain = await get(`/api/task-status/${done.task_id}`);
    expect(plain.status).toBe(200);
    const escaped = done.task_id.replace(/-/g, '%2D');
    for (const path of [`/api/task-status/${done.task_id}?x=1`, `/api/./task-status/${done.task_id}`, `/api/x/../task-status/${done.task_id}`, `/api/task-status/${escaped}`]) {
      expect(await get(path), path).toEqual(plain);
    }
    expect((await get(`/api/task-status/${done.task_id}/`)).status).toBe(404);
    expect((await get(`//api/task-status/${done.task_id}`)).status).toBe(404);
  });

  it('answers 404 in FastAPI shape for an unknown task', async () => {
    const res = await fetch(`${stack.app.url}/api/task-status/nope`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ detail: 'Task not found' });
  });
});

describe('GET /api/image/{task_id}', () => {
  it('serves the bytes with ETag and long cache headers, and 304 for a matching If-None-Match', async () => {
    const res = await fetch(done.images[0]!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const etag = res.headers.get('etag')!;
    const body = Buffer.from(await res.arrayBuffer());
    expect(Number(res.headers.get('content-length'))).toBe(body.length);
    const again = await fetch(done.images[0]!, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });

  it('honours Range', async () => {
    const full = Buffer.from(await (await fetch(done.images[1]!)).arrayBuffer());
    const part = await fetch(done.images[1]!, { headers: { range: 'bytes=8-23' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 8-23/${full.length}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(full.subarray(8, 24));
    const tail = await fetch(done.images[1]!, { headers: { range: 'bytes=-4' } });
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(full.subarray(full.length - 4));
    const bad = await fetch(done.images[1]!, { headers: { range: `bytes=${full.length + 10}-` } });
    expect(bad.status).toBe(416);
  });

  it('404 for an image that does not exist, 422 for a bad index', async () => {
    const missing = await fetch(`${stack.app.url}/api/image/${done.task_id}?index=3`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { detail: string }).detail).toMatch(/Image 3 of this task does not exist/);
    expect((await fetch(`${stack.app.url}/api/image/unknown?index=0`)).status).toBe(404);
    const bad = await fetch(`${stack.app.url}/api/image/${done.task_id}?index=first`);
    expect(bad.status).toBe(422);
    expect(await bad.json()).toEqual({ detail: [{ loc: ['query', 'index'], msg: 'Input should be a valid integer from 0 to 3', type: 'int_parsing' }] });
  });
});

describe('POST /api/task/{task_id}/cancel', () => {
  it('answers like task-status and leaves a finished task as it was', async () => {
    const res = await fetch(`${stack.app.url}/api/task/${done.task_id}/cancel`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ task_id: done.task_id, status: 'completed', images: done.images });
    expect((await fetch(`${stack.app.url}/api/task/nope/cancel`, { method: 'POST' })).status).toBe(404);
  });
});

describe('docs and conventions', () => {
  it('serves an OpenAPI 3.1 document and renders it on /docs with a link to GraphiQL', async () => {
    const doc = (await (await fetch(`${stack.app.url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(['/generate-image', '/api/task-status/{task_id}', '/api/image/{task_id}', '/api/task/{task_id}/cancel', '/health', '/ready']);
    const page = await fetch(`${stack.app.url}/docs`);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const html = await page.text();
    expect(html).toContain('href="/graphql"');
    // Without JavaScript, the routes as a plain list.
    const fallback = /<noscript>([\s\S]*)<\/noscript>/.exec(html)?.[1] ?? '';
    expect(fallback).toContain('<code>/generate-image</code>');
    expect(fallback).toContain('1–4, default 1'); // count's limits, from the same constants the route enforces
  });

  it('/docs is Swagger UI from the service: a strict CSP, hashed assets cached for a year, compressed, 304 on revalidation', async () => {
    const page = await fetch(`${stack.app.url}/docs`);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    const html = await page.text();
    // Every script, stylesheet and icon is the service's own, under /docs/assets/ with a content hash.
    const links = [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css|png))"/g)].map((m) => m[1]!);
    expect(links).toHaveLength(5);
    for (const link of links) expect(link).toMatch(/^\/docs\/assets\/[\w-]+\.[0-9a-f]{16}\.(js|css|png)$/);
    const types = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', png: 'image/png' } as const;
    for (const link of links) {
      const res = await fetch(`${stack.app.url}${link}`, { headers: { 'accept-encoding': 'br, gzip' } });
      expect(res.status, link).toBe(200);
      expect(res.headers.get('content-type')).toBe(types[link.split('.').pop() as keyof typeof types]);
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(res.headers.get('content-encoding')).toBe(link.endsWith('.png') ? null : 'br');
      await res.arrayBuffer();
      const again = await fetch(`${stack.app.url}${link}`, { headers: { 'if-none-match': res.headers.get('etag')! } });
      expect(again.status).toBe(304);
    }
    // Swagger UI's bundle, compressed well below its 1.8 MB.
    const bundle = links.find((l) => l.includes('swagger-ui-bundle'))!;
    const compressed = await fetch(`${stack.app.url}${bundle}`, { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } });
    expect(compressed.headers.get('content-encoding')).toBe('gzip');
    expect(Number(compressed.headers.get('content-length'))).toBeLessThan(700_000);
    const plain = await fetch(`${stack.app.url}${bundle}`, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(await plain.text()).toContain('SwaggerUIBundle');
    const init = await (await fetch(`${stack.app.url}${links.find((l) => l.includes('docs-init'))!}`)).text();
    expect(init).toContain('validatorUrl: null');
    expect((await fetch(`${stack.app.url}/docs/assets/swagger-ui-bundle.0000000000000000.js`)).status).toBe(404);
    expect((await fetch(`${stack.app.url}/docs/assets/x.js`, { method: 'POST' })).status).toBe(405);
  });

  it('serves the built playground: the page revalidated, its hashed assets precompressed, cached a year, 304 on a match, HEAD without a body', async () => {
    const page = await fetch(`${stack.app.url}/`, { headers: { 'accept-encoding': 'gzip' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    const script = /src="(\/playground\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const br = await fetch(`${stack.app.url}${script!}`, { headers: { 'accept-encoding': 'gzip;q=0.5, br' } });
    expect(br.headers.get('content-encoding')).toBe('br');
    expect(br.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const compressedLength = Number(br.headers.get('content-length'));
    await br.arrayBuffer();
    const plain = await fetch(`${stack.app.url}${script!}`, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect((await plain.arrayBuffer()).byteLength).toBeGreaterThan(compressedLength);
    const again = await fetch(`${stack.app.url}${script!}`, { headers: { 'if-none-match': `W/${plain.headers.get('etag')!}` } });
    expect(again.status).toBe(304);
    const head = await fetch(`${stack.app.url}${script!}`, { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } });
    expect(head.headers.get('content-encoding')).toBe('gzip');
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    expect((await fetch(`${stack.app.url}/playground/assets/none.js`)).status).toBe(404);
  });

  it('the OpenAPI document names the key schemes, the scope and the refusals of each protected route', async () => {
    type Op = { security?: Record<string, string[]>[]; 'x-required-scope'?: string; responses: Record<string, { headers?: Record<string, unknown> }> };
    const doc = (await (await fetch(`${stack.app.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, Op>>;
      components: { securitySchemes: Record<string, Record<string, string>> };
    };
    expect(doc.components.securitySchemes).toMatchObject({ bearerKey: { type: 'http', scheme: 'bearer' }, headerKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } });
    const protectedOps: [Op, string][] = [
      [doc.paths['/generate-image']!.post!, 'generate'],
      [doc.paths['/api/task-status/{task_id}']!.get!, 'read'],
      [doc.paths['/api/image/{task_id}']!.get!, 'read'],
      [doc.paths['/api/task/{task_id}/cancel']!.post!, 'generate'],
    ];
    for (const [op, scope] of protectedOps) {
      expect(op.security).toEqual(expect.arrayContaining([{ bearerKey: [] }, { headerKey: [] }]));
      expect(op['x-required-scope']).toBe(scope);
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['401', '403']));
    }
    expect(doc.paths['/generate-image']!.post!.responses['429']!.headers).toHaveProperty('Retry-After');
    expect(doc.paths['/health']!.get!.security).toBeUndefined();
    expect(await (await fetch(`${stack.app.url}/docs`)).text()).toContain('Needs an API key with the <code>read</code> scope');
  });

  it('unknown paths get 404 and known paths with the wrong method 405, both in FastAPI shape', async () => {
    const notFound = await fetch(`${stack.app.url}/api/nothing-here`);
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toEqual({ detail: 'Not Found' });
    const wrong = await fetch(`${stack.app.url}/generate-image`);
    expect(wrong.status).toBe(405);
    expect(await wrong.json()).toEqual({ detail: 'Method Not Allowed' });
  });

  it('refuses a browser origin that CORS_ORIGINS does not list, and serves the listed one and scripts', async () => {
    const evil = await fetch(`${stack.app.url}/api/task-status/${done.task_id}`, { headers: { origin: 'https://evil.example' } });
    expect(evil.status).toBe(403);
    expect(await evil.json()).toEqual({ detail: 'Origin https://evil.example is not allowed (CORS_ORIGINS)' });
    const app = await fetch(`${stack.app.url}/api/task-status/${done.task_id}`, { headers: { origin: 'https://app.example' } });
    expect(app.status).toBe(200);
  });

  it('/health reports each worker, the database and the queue', async () => {
    // The public form: per worker its index and state, no URL, queue or error (HEALTH_DETAILS shows those).
    const health = (await (await fetch(`${stack.app.url}/health`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({
      status: 'ok',
      comfyui: [{ index: 0, reachable: true, ready: true }],
      database: { ok: true },
      queue: { pending: 0, processing: 0 },
      auth: 'open',
      version: '0.1.0',
    });
    expect(typeof health.uptime_s).toBe('number');
    expect((await fetch(`${stack.app.url}/ready`)).status).toBe(200);
  });
});
