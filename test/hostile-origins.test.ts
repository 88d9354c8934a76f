/**
 * Cross-site requests and DNS rebinding (issue 9, item 9): with CORS_ORIGINS unset the service
 * answers only its own pages and clients without Origin; a foreign page gets 403 on every route and
 * on the WebSocket upgrade, a foreign Host 421. `CORS_ORIGINS=*` brings back the old openness.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequestGuard, type GuardConfig } from '../src/http/request-guard.js';
import { collect, gqlData, rawRequest, wsClient, type GraphQLBody } from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { startStack, type Stack } from './helpers/stack.js';
import { tryUpgrade } from './helpers/upgrade.js';

const EVIL = 'http://evil.example';

/** Opens a graphql-ws socket with the given headers: 'open' (closed again), or the HTTP answer that refused the upgrade. */
async function upgrade(baseUrl: string, headers: Record<string, string>): Promise<'open' | { status: number; body: string }> {
  const result = await tryUpgrade(baseUrl, headers);
  if (!('socket' in result)) return result;
  result.socket.close();
  return 'open';
}

async function crossSiteForm(baseUrl: string, origin: string): Promise<Response> {
  const form = new FormData();
  form.set('description', 'posted by another site');
  form.set('referenceImage', new Blob([(await makeImage('png', 64, 48)) as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'ref.png');
  return fetch(`${baseUrl}/generate-image`, { method: 'POST', body: form, headers: { origin } });
}

describe('CORS_ORIGINS unset: same origin only', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.close();
  });

  it('a form on another site creates no task and cancels none (403 in FastAPI shape)', async () => {
    const res = await crossSiteForm(stack.app.url, EVIL);
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ detail: `Origin ${EVIL} is not allowed (CORS_ORIGINS)` });
    const cancel = await fetch(`${stack.app.url}/api/task/any/cancel`, { method: 'POST', headers: { origin: EVIL } });
    expect(cancel.status).toBe(403);
    const { tasks } = await gqlData<{ tasks: { edges: unknown[] } }>(stack.app.url, '{ tasks(first: 5) { edges { node { id } } } }');
    expect(tasks.edges).toEqual([]);
  });

  it('every route refuses a foreign origin, also GETs, unknown paths, SSE and `Origin: null`', async () => {
    for (const path of ['/health', '/ready', '/openapi.json', '/docs', '/api/task-status/x', '/nowhere']) {
      const res = await fetch(`${stack.app.url}${path}`, { headers: { origin: EVIL } });
      expect(res.status, path).toBe(403);
      expect(await res.json(), path).toEqual({ detail: `Origin ${EVIL} is not allowed (CORS_ORIGINS)` });
    }
    const sse = await fetch(`${stack.app.url}/graphql?query=${encodeURIComponent('{ __typename }')}`, { headers: { origin: EVIL, accept: 'text/event-stream' } });
    expect(sse.status).toBe(403);
    expect(((await sse.json()) as GraphQLBody<unknown>).errors?.[0]?.message).toBe(`Origin ${EVIL} is not allowed (CORS_ORIGINS)`);
    const sandboxed = await fetch(`${stack.app.url}/health`, { headers: { origin: 'null' } });
    expect(sandboxed.status).toBe(403);
  });

  it('refuses a foreign WebSocket with HTTP 403 before the handshake, and opens one from the own origin or without Origin', async () => {
    const refused = await upgrade(stack.app.url, { origin: EVIL });
    expect(refused).toMatchObject({ status: 403 });
    expect(JSON.parse((refused as { body: string }).body)).toEqual({
      errors: [{ message: `Origin ${EVIL} is not allowed (CORS_ORIGINS)`, extensions: { code: 'ORIGIN_NOT_ALLOWED' } }],
    });
    expect(await upgrade(stack.app.url, { origin: stack.app.url })).toBe('open');
    const own = wsClient(stack.app.url, { headers: { origin: stack.app.url } });
    expect(await collect(own, '{ __typename }', {})).toEqual([{ data: { __typename: 'Query' } }]);
    await own.dispose();
    const script = wsClient(stack.app.url);
    expect(await collect(script, '{ __typename }', {})).toEqual([{ data: { __typename: 'Query' } }]);
    await script.dispose();
  });

  it('serves its own pages (Origin = its own scheme, host and port) and clients that send no Origin', async () => {
    const port = new URL(stack.app.url).port;
    const own = await fetch(`${stack.app.url}/health`, { headers: { origin: stack.app.url } });
    expect(own.status).toBe(200);
    const byName = await rawRequest(`${stack.app.url}/health`, { headers: { host: `localhost:${port}`, origin: `http://localhost:${port}` } });
    expect(byName.status).toBe(200);
    // Another port on the same host is another origin.
    const otherPort = await rawRequest(`${stack.app.url}/health`, { headers: { origin: `http://127.0.0.1:${Number(port) + 1}` } });
    expect(otherPort.status).toBe(403);
    expect((await fetch(`${stack.app.url}/health`)).status).toBe(200);
  });

  it('bound to loopback, answers only loopback host names: a rebinding page (Host evil.example) gets 421', async () => {
    const rebound = await rawRequest(`${stack.app.url}/health`, { headers: { host: 'evil.example:9000' } });
    expect(rebound.status).toBe(421);
    expect(JSON.parse(rebound.body)).toEqual({ detail: 'Host evil.example:9000 is not allowed (ALLOWED_HOSTS)' });
    const graphql = await rawRequest(`${stack.app.url}/graphql`, {
      method: 'POST',
      headers: { host: 'evil.example', 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ query: '{ __typename }' })),
    });
    expect(graphql.status).toBe(421);
    expect((JSON.parse(graphql.body) as GraphQLBody<unknown>).errors?.[0]?.message).toBe('Host evil.example is not allowed (ALLOWED_HOSTS)');
    expect(await upgrade(stack.app.url, { host: 'evil.example' })).toMatchObject({ status: 421 });
    // A user part is no way around it.
    expect((await rawRequest(`${stack.app.url}/health`, { headers: { host: 'evil.example@localhost' } })).status).toBe(421);
    for (const host of ['localhost', 'LOCALHOST:1', '127.0.0.1:9000', '[::1]:9000']) {
      expect((await rawRequest(`${stack.app.url}/health`, { headers: { host } })).status, host).toBe(200);
    }
  });
});

describe('CORS_ORIGINS=* (the old service)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ config: { corsOrigins: '*' } });
  });
  afterAll(async () => {
    await stack.close();
  });

  it('answers any origin, without credentials, on REST, GraphQL and WebSocket', async () => {
    expect((await fetch(`${stack.app.url}/health`, { headers: { origin: EVIL } })).status).toBe(200);
    const res = await fetch(`${stack.app.url}/graphql`, { method: 'POST', headers: { origin: EVIL, 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(EVIL);
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(await upgrade(stack.app.url, { origin: EVIL })).toBe('open');
  });
});

describe('the guard’s decisions (no server needed)', () => {
  const base: GuardConfig = { host: '0.0.0.0', allowedHosts: [], publicUrl: undefined, corsOrigins: [] };
  const decide = (config: Partial<GuardConfig>, headers: Record<string, string>) => createRequestGuard({ ...base, ...config })({ headers });

  it('bound wider, checks Host only when ALLOWED_HOSTS is set: then the listed, loopback and PUBLIC_URL hosts pass', () => {
    expect(decide({}, { host: 'anything.example' })).toBeUndefined();
    const listed = { allowedHosts: ['gpu.lan', 'fe80::1'], publicUrl: 'https://gpu.example.com' };
    for (const host of ['gpu.lan:9000', 'GPU.LAN', '[fe80::1]:9000', 'gpu.example.com', 'localhost:9000']) expect(decide(listed, { host }), host).toBeUndefined();
    expect(decide(listed, { host: 'evil.example' })).toEqual({ status: 421, detail: 'Host evil.example is not allowed (ALLOWED_HOSTS)' });
  });

  it('PUBLIC_URL’s origin and the listed origins pass; behind a TLS proxy the own https origin passes too', () => {
    const config = { publicUrl: 'https://gpu.example.com', corsOrigins: ['https://app.example'] };
    expect(decide(config, { host: 'internal:9000', origin: 'https://gpu.example.com' })).toBeUndefined();
    expect(decide(config, { host: 'internal:9000', origin: 'https://app.example' })).toBeUndefined();
    expect(decide({}, { host: 'gpu.example.com', origin: 'https://gpu.example.com' })).toBeUndefined();
    expect(decide(config, { host: 'internal:9000', origin: 'https://app.example.evil' })).toMatchObject({ status: 403 });
  });
});
