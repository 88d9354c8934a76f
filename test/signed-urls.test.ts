/**
 * Signed image URLs: once keys exist, the `images` a key is handed work in a request that carries
 * no header (an `<img>`), for that one image and until they expire; anything else is refused.
 * In open mode the URLs stay unsigned, as before.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../src/auth/create-api-key.js';
import { UrlSigner } from '../src/auth/url-signer.js';
import { makeImage } from './helpers/images.js';
import { startStack, until, type Stack, type TaskStatusBody } from './helpers/stack.js';

describe('UrlSigner', () => {
  const signer = new UrlSigner(randomBytes(32), 60);
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);
  const parts = (query: string) => Object.fromEntries(new URLSearchParams(query)) as { exp: string; sig: string };

  it('accepts its own signature for that task and index until the expiry, and nothing else', () => {
    const { exp, sig } = parts(signer.sign('task-1', 2, now));
    expect(Number(exp) * 1000).toBeGreaterThanOrEqual(now + 60_000);
    expect(signer.check('task-1', 2, exp, sig, now)).toBe('valid');
    expect(signer.check('task-1', 2, exp, sig, Number(exp) * 1000)).toBe('valid');
    expect(signer.check('task-1', 2, exp, sig, Number(exp) * 1000 + 1000)).toBe('expired');
    expect(signer.check('task-1', 3, exp, sig, now)).toBe('invalid');
    expect(signer.check('task-2', 2, exp, sig, now)).toBe('invalid');
    expect(signer.check('task-1', 2, String(Number(exp) + 60), sig, now)).toBe('invalid'); // a later expiry, same sig
    const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    expect(signer.check('task-1', 2, exp, flipped, now)).toBe('invalid');
    expect(signer.check('task-1', 2, null, sig, now)).toBe('invalid');
  });

  it('signs the same image the same way within a step, from kept signatures that never cross images or steps', () => {
    const many = new UrlSigner(randomBytes(32), 600);
    // More images than it keeps: every signature, kept or made again, still checks.
    const queries = Array.from({ length: 10_050 }, (_, i) => many.sign(`task-${i % 5025}`, i % 2, now));
    queries.forEach((query, i) => {
      const { exp, sig } = parts(query);
      expect(many.check(`task-${i % 5025}`, i % 2, exp, sig, now)).toBe('valid');
    });
    expect(many.sign('task-7', 1, now + 60_000)).toBe(many.sign('task-7', 1, now + 61_000)); // one 5-minute step
    expect(many.sign('task-7', 1, now)).not.toBe(many.sign('task-7', 0, now));
    const later = parts(many.sign('task-7', 1, now + 600_000));
    expect(Number(later.exp)).toBeGreaterThan(Number(parts(many.sign('task-7', 1, now)).exp));
    expect(many.check('task-7', 1, later.exp, later.sig, now)).toBe('valid');
  });

  it('a signer with another secret does not accept it', () => {
    const { exp, sig } = parts(signer.sign('task-1', 0, now));
    expect(new UrlSigner(randomBytes(32), 60).check('task-1', 0, exp, sig, now)).toBe('invalid');
  });
});

describe('signed image URLs over HTTP', () => {
  let stack: Stack;
  let key: string;
  let otherKey: string;
  let done: TaskStatusBody;
  beforeAll(async () => {
    stack = await startStack({ config: { imageUrlTtlS: 600 } });
  });
  afterAll(async () => {
    await stack.close();
  });

  async function generate(headers: Record<string, string>): Promise<string> {
    const form = new FormData();
    for (const [k, v] of Object.entries({ description: 'signed', count: '2', steps: '2', size: '256x256' })) form.set(k, v);
    form.set('referenceImage', new Blob([(await makeImage('png', 320, 240)) as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'ref.png');
    const res = await fetch(`${stack.app.url}/generate-image`, { method: 'POST', body: form, headers });
    expect(res.status).toBe(200);
    return ((await res.json()) as TaskStatusBody).task_id;
  }

  async function completed(id: string, headers: Record<string, string>): Promise<TaskStatusBody> {
    let body: TaskStatusBody | undefined;
    await until(`task ${id} completed`, async () => {
      body = (await (await fetch(`${stack.app.url}/api/task-status/${id}`, { headers })).json()) as TaskStatusBody;
      return body.status === 'completed';
    });
    return body!;
  }

  /** The image URL with its query changed by `edit`. */
  function edited(url: string, edit: (q: URLSearchParams) => void): string {
    const u = new URL(url);
    edit(u.searchParams);
    return u.toString();
  }

  it('in open mode the URLs are unsigned, and a stray signature is not looked at', async () => {
    const id = await generate({});
    const body = await completed(id, {});
    expect(body.images).toEqual([0, 1].map((i) => `${stack.app.url}/api/image/${id}?index=${i}`));
    expect((await fetch(`${body.images[0]!}&exp=1&sig=nonsense`)).status).toBe(200);
  });

  it('once keys exist, the URL from the status body works in a plain request with no header', async () => {
    key = (await createApiKey(stack.app.db, { name: 'owner' })).key;
    otherKey = (await createApiKey(stack.app.db, { name: 'other' })).key;
    await until('keys mode', async () => ((await (await fetch(`${stack.app.url}/health`)).json()) as { auth: string }).auth === 'keys');
    done = await completed(await generate({ authorization: `Bearer ${key}` }), { authorization: `Bearer ${key}` });
    expect(done.images).toHaveLength(2);
    for (const [i, url] of done.images.entries()) {
      expect(url).toMatch(new RegExp(`^${stack.app.url}/api/image/${done.task_id}\\?index=${i}&exp=\\d+&sig=[\\w-]{43}$`));
      const res = await fetch(url); // what an <img> sends: no key
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/png');
      // Kept by the browser only, and no longer than the URL works.
      const exp = Number(new URL(url).searchParams.get('exp'));
      const maxAge = Number(/^private, max-age=(\d+)$/.exec(res.headers.get('cache-control') ?? '')?.[1]);
      expect(maxAge).toBeGreaterThan(0);
      expect(maxAge).toBeLessThanOrEqual(exp - Math.floor(Date.now() / 1000) + 1);
      expect(res.headers.get('etag')).toMatch(/^".+"$/);
    }
    // Range and HEAD work on a signed URL too.
    const part = await fetch(done.images[0]!, { headers: { range: 'bytes=0-7' } });
    expect(part.status).toBe(206);
    expect((await fetch(done.images[0]!, { method: 'HEAD' })).status).toBe(200);
  });

  it('a signed URL works for anyone holding it, whatever key they send', async () => {
    expect((await fetch(done.images[0]!, { headers: { authorization: `Bearer ${otherKey}` } })).status).toBe(200);
    // Without the signature, that other key sees nothing.
    expect((await fetch(`${stack.app.url}/api/image/${done.task_id}?index=0`, { headers: { authorization: `Bearer ${otherKey}` } })).status).toBe(404);
  });

  it('no key and no signature is 401', async () => {
    const res = await fetch(`${stack.app.url}/api/image/${done.task_id}?index=0`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
  });

  it('a tampered signature, the signature of another index and a changed expiry are 403', async () => {
    const url = done.images[0]!;
    const sig = new URL(url).searchParams.get('sig')!;
    const tampered = edited(url, (q) => q.set('sig', (sig[0] === 'x' ? 'y' : 'x') + sig.slice(1)));
    const otherIndex = edited(url, (q) => q.set('index', '1'));
    const later = edited(url, (q) => q.set('exp', String(Number(q.get('exp')) + 3600)));
    const noSig = edited(url, (q) => q.delete('sig'));
    for (const u of [tampered, otherIndex, later, noSig]) {
      const res = await fetch(u);
      expect(res.status, u).toBe(403);
      expect(((await res.json()) as { detail: string }).detail).toMatch(/signature .* not valid/);
    }
  });

  it('an expired signature is 403 and says so; the owner key still works without one', async () => {
    // The service's own secret (kept in the settings table), signing as if two hours ago.
    const row = await stack.app.db.selectFrom('settings').select('value').where('name', '=', 'url_signing_secret').executeTakeFirstOrThrow();
    const past = new UrlSigner(Buffer.from(row.value, 'utf8'), 600);
    const query = past.sign(done.task_id, 0, Date.now() - 2 * 3600_000);
    const url = `${stack.app.url}/api/image/${done.task_id}?index=0&${query}`;
    expect(past.check(done.task_id, 0, new URLSearchParams(query).get('exp'), new URLSearchParams(query).get('sig'))).toBe('expired');
    const res = await fetch(url);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/expired/);
    // The same, made now with that secret, works: the only difference above is the expiry.
    expect((await fetch(`${stack.app.url}/api/image/${done.task_id}?index=0&${past.sign(done.task_id, 0)}`)).status).toBe(200);
    // A request with a valid key header needs no signature, even an expired one.
    const withKey = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
    expect(withKey.status).toBe(200);
    expect(withKey.headers.get('cache-control')).toMatch(/^private\b/);
  });
});
