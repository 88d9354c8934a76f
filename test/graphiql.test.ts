/**
 * GraphiQL (issue 9, item 11): a small page whose assets come from the installed package as static
 * files, compressed as the client accepts and cached for a year under content-hashed names; and
 * GRAPHIQL=false turns it off.
 */
import { request, type IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import * as bundle from '@graphql-yoga/render-graphiql/graphiql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseEncoding } from '../src/http/static-files.js';
import { startStack, type Stack } from './helpers/stack.js';

/** A GET whose body stays as sent (fetch would decompress it). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

const HTML = { accept: 'text/html,application/xhtml+xml' };

describe('GraphiQL on', () => {
  let stack: Stack;
  let html: string;
  let assets: { js: string; css: string; workers: string[] };
  beforeAll(async () => {
    stack = await startStack();
    const page = await get(`${stack.app.url}/graphql`, HTML);
    expect(page.status).toBe(200);
    html = page.body.toString('utf8');
    const links = (re: RegExp) => [...html.matchAll(re)].map((m) => m[1]!);
    assets = {
      js: links(/<script src="([^"]+)"/g)[0]!,
      css: links(/<link rel="stylesheet" href="([^"]+)"/g)[0]!,
      workers: links(/"(\/graphql\/graphiql\/[a-z]+\.worker\.[0-9a-f]+\.js)"/g),
    };
  });
  afterAll(async () => {
    await stack.close();
  });

  it('the page is a few KB, links its assets by content-hashed name and keeps the example query', () => {
    expect(Buffer.byteLength(html)).toBeLessThan(8 * 1024);
    expect(assets.js).toMatch(/^\/graphql\/graphiql\/graphiql\.[0-9a-f]{16}\.js$/);
    expect(assets.css).toMatch(/^\/graphql\/graphiql\/graphiql\.[0-9a-f]{16}\.css$/);
    expect(assets.workers).toHaveLength(3);
    expect(html).toMatch(/<title>Kontext Gateway<\/title>/);
    expect(html).toMatch(/query RecentTasks/);
    expect(html).toMatch(/"subscriptionsProtocol":"WS"/);
    expect(html).not.toMatch(/https?:\/\/(?!localhost)[a-z]/i); // nothing from a CDN
  });

  it('serves the bundle gzip-compressed, immutable for a year, with an ETag; the same bytes as the installed package', async () => {
    const res = await get(`${stack.app.url}${assets.js}`, { 'accept-encoding': 'gzip, deflate' });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(res.headers['content-type']).toMatch(/^text\/javascript/);
    expect(res.headers.vary).toMatch(/Accept-Encoding/i);
    expect(res.headers.etag).toMatch(/^"[0-9a-f]{16}"$/);
    expect(res.body.length).toBeLessThan(Buffer.byteLength(bundle.js) / 2);
    expect(gunzipSync(res.body).toString('utf8')).toBe(bundle.js);
  });

  it('prefers brotli when accepted, honours q=0, and sends identity to a client that accepts neither', async () => {
    const br = await get(`${stack.app.url}${assets.css}`, { 'accept-encoding': 'gzip;q=0.5, br' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(brotliDecompressSync(br.body).toString('utf8')).toBe(bundle.css);
    const plain = await get(`${stack.app.url}${assets.css}`, { 'accept-encoding': 'br;q=0, gzip;q=0' });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.toString('utf8')).toBe(bundle.css);
    expect(chooseEncoding('identity')).toBeUndefined();
    expect(chooseEncoding('*')).toBe('br');
    expect(chooseEncoding('br;q=0.1, gzip')).toBe('gzip');
  });

  it('answers 304 to a matching If-None-Match, and serves the Monaco workers and 404 for an unknown name', async () => {
    const first = await get(`${stack.app.url}${assets.workers[0]}`, { 'accept-encoding': 'gzip' });
    expect(first.status).toBe(200);
    const again = await get(`${stack.app.url}${assets.workers[0]}`, { 'if-none-match': first.headers.etag! });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    for (const worker of assets.workers) expect((await get(`${stack.app.url}${worker}`)).status, worker).toBe(200);
    expect((await get(`${stack.app.url}/graphql/graphiql/graphiql.0000000000000000.js`)).status).toBe(404);
  });
});

describe('GRAPHIQL=false', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ config: { graphiql: false } });
  });
  afterAll(async () => {
    await stack.close();
  });

  it('GET /graphql in a browser gets no GraphiQL page and the assets are not served', async () => {
    // Yoga's usual answer to a request that accepts only HTML: 406 Not Acceptable, no page.
    const res = await get(`${stack.app.url}/graphql`, HTML);
    expect(res.status).toBe(406);
    expect(res.body.toString('utf8')).not.toMatch(/YogaGraphiQL|<html/i);
    expect((await get(`${stack.app.url}/graphql/graphiql/graphiql.0000000000000000.js`)).status).toBe(404);
    // GraphQL itself still answers.
    const query = await fetch(`${stack.app.url}/graphql?query=${encodeURIComponent('{ __typename }')}`, { headers: { accept: 'application/json', 'x-graphql-yoga-csrf': '1' } });
    expect(await query.json()).toEqual({ data: { __typename: 'Query' } });
  });
});
