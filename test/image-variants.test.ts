/**
 * Image variants: `GET /api/image/{id}?format=&width=&quality=` over real HTTP against the real
 * service and the simulator. Each format decodes as itself at the asked width and aspect ratio, no
 * variant is larger than its original, bad parameters are 422s naming the parameter and its limit,
 * a variant is made once however many first requests race for it and is then served like the
 * original (ETag, 304, Range, HEAD, the same cache headers), signed URLs carry variants, GraphQL
 * hands out `url(format:, width:)` and `thumbnailUrl`, OUTPUT_FORMAT chooses the stored format, and
 * an S3 store keeps variants beside its originals.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../src/auth/create-api-key.js';
import type { ComfyBackend } from '../src/comfyui/backend.js';
import { Limiter } from '../src/images/limiter.js';
import { VariantMaker, variantMakerFor } from '../src/images/variant-maker.js';
import type { BlobStore } from '../src/storage/blob-store.js';
import { FileStore } from '../src/storage/file-store.js';
import { deleteOldTasks } from '../src/tasks/cleanup.js';
import { ResultStore } from '../src/tasks/result-store.js';
import { bearer, gqlData, gqlResponse } from './helpers/graphql.js';
import { makeImage } from './helpers/images.js';
import { startS3, type S3Server } from './helpers/s3.js';
import { startStack, until, waitForStatus, type Stack } from './helpers/stack.js';

/** Generates a task of `count` images of `size` and waits for it; its id. */
async function generated(stack: Stack, size = '512x256', count = 1, headers: Record<string, string> = {}): Promise<string> {
  const form = new FormData();
  for (const [k, v] of Object.entries({ description: 'variants', count: String(count), steps: '2', size })) form.set(k, v);
  form.set('referenceImage', new Blob([(await makeImage('png', 320, 240)) as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'ref.png');
  const res = await fetch(`${stack.app.url}/generate-image`, { method: 'POST', body: form, headers });
  expect(res.status).toBe(200);
  const id = ((await res.json()) as { task_id: string }).task_id;
  if (Object.keys(headers).length === 0) await waitForStatus(stack.app.url, id, ['completed'], 60_000);
  return id;
}

/** The body of a 200 answer, with its headers. */
async function fetchOk(url: string, init: RequestInit = {}): Promise<{ bytes: Buffer; headers: Headers }> {
  const res = await fetch(url, init);
  expect(res.status, `${url}: ${res.status}`).toBe(200);
  return { bytes: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

/** Counts the store's puts of keys matching `pattern` from now on. */
function countPuts(store: BlobStore, pattern: RegExp): { count: () => number; restore: () => void } {
  const original = store.put.bind(store);
  let n = 0;
  store.put = (key, source, options) => {
    if (pattern.test(key)) n++;
    return original(key, source, options);
  };
  return { count: () => n, restore: () => void (store.put = original) };
}

describe('image variants (open mode, folder store)', () => {
  let stack: Stack;
  let id: string;
  let base: string;
  beforeAll(async () => {
    stack = await startStack();
    id = await generated(stack);
    base = `${stack.app.url}/api/image/${id}?index=0`;
  }, 90_000);
  afterAll(async () => {
    await stack.close();
  });

  it('the original stays the default: a 512x256 PNG', async () => {
    const { bytes, headers } = await fetchOk(base);
    expect(headers.get('content-type')).toBe('image/png');
    const meta = await sharp(bytes).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 512, 256]);
  });

  it('each format decodes as that format, at the requested width with the aspect ratio kept', async () => {
    const expected = { png: ['png', 'image/png'], jpeg: ['jpeg', 'image/jpeg'], webp: ['webp', 'image/webp'], avif: ['heif', 'image/avif'] } as const;
    for (const [format, [decoded, contentType]] of Object.entries(expected)) {
      const { bytes, headers } = await fetchOk(`${base}&format=${format}&width=200`);
      expect(headers.get('content-type'), format).toBe(contentType);
      const meta = await sharp(bytes).metadata();
      expect([meta.format, meta.width, meta.height], format).toEqual([decoded, 200, 100]);
      if (format === 'avif') expect(meta.compression).toBe('av1');
    }
  });

  it('never enlarges: a width at or above the original is the original width, and the same object', async () => {
    const original = await fetchOk(base);
    // Same format and no smaller width: the original itself.
    const wide = await fetchOk(`${base}&width=4096`);
    expect(wide.headers.get('etag')).toBe(original.headers.get('etag'));
    expect(wide.bytes.equals(original.bytes)).toBe(true);
    const webp = await fetchOk(`${base}&format=webp`);
    const webpWide = await fetchOk(`${base}&format=webp&width=1000&quality=80`);
    expect((await sharp(webpWide.bytes).metadata()).width).toBe(512);
    // quality 80 is WebP's default, 1000 is past the original: one rendering, one ETag.
    expect(webpWide.headers.get('etag')).toBe(webp.headers.get('etag'));
    expect(await stack.app.store.exists(`images/${id}/0.png.q80.webp`)).toBe(true);
    expect(await stack.app.store.exists(`images/${id}/0.png.w1000.q80.webp`)).toBe(false);
  });

  it('quality changes the bytes and the ETag; PNG with a quality is a palette image', async () => {
    const low = await fetchOk(`${base}&format=jpeg&quality=5`);
    const high = await fetchOk(`${base}&format=jpeg&quality=100`);
    expect(low.bytes.length).toBeLessThan(high.bytes.length);
    expect(low.headers.get('etag')).not.toBe(high.headers.get('etag'));
    const palette = await fetchOk(`${base}&quality=50`);
    const meta = await sharp(palette.bytes).metadata();
    expect(meta.format).toBe('png');
    expect(meta.isPalette).toBe(true);
  });

  it('bad values are 422s naming the parameter and its limit', async () => {
    const cases: [string, string, RegExp, string][] = [
      ['width=15', 'width', /16 to 4096/, 'greater_than_equal'],
      ['width=4097', 'width', /16 to 4096/, 'less_than_equal'],
      ['width=abc', 'width', /16 to 4096/, 'int_parsing'],
      ['width=1.5', 'width', /16 to 4096/, 'int_parsing'],
      ['width=-20', 'width', /16 to 4096/, 'int_parsing'],
      ['width=', 'width', /16 to 4096/, 'int_parsing'],
      ['quality=0', 'quality', /1 to 100/, 'greater_than_equal'],
      ['quality=101', 'quality', /1 to 100/, 'less_than_equal'],
      ['quality=99999999999', 'quality', /1 to 100/, 'int_parsing'],
      ['format=gif', 'format', /png, jpeg, webp, avif/, 'enum'],
      ['format=JPEG', 'format', /png, jpeg, webp, avif/, 'enum'],
    ];
    for (const [query, param, limit, type] of cases) {
      const res = await fetch(`${base}&${query}`);
      expect(res.status, query).toBe(422);
      const { detail } = (await res.json()) as { detail: { loc: string[]; msg: string; type: string }[] };
      expect(detail, query).toHaveLength(1);
      expect(detail[0]!.loc).toEqual(['query', param]);
      expect(detail[0]!.msg, query).toMatch(new RegExp(`^${param} must be`));
      expect(detail[0]!.msg, query).toMatch(limit);
      expect(detail[0]!.type, query).toBe(type);
    }
    // Every bad parameter is listed at once, the index first.
    const res = await fetch(`${stack.app.url}/api/image/${id}?index=x&format=bmp&width=9&quality=0`);
    expect(res.status).toBe(422);
    const { detail } = (await res.json()) as { detail: { loc: string[] }[] };
    expect(detail.map((d) => d.loc[1])).toEqual(['index', 'format', 'width', 'quality']);
  });

  it('/openapi.json documents format, width and quality with their limits, and the 422', async () => {
    type Param = { name: string; schema: { enum?: string[]; minimum?: number; maximum?: number } };
    const doc = (await (await fetch(`${stack.app.url}/openapi.json`)).json()) as {
      paths: Record<string, { get: { parameters: Param[]; responses: Record<string, { description: string }> } }>;
    };
    const route = doc.paths['/api/image/{task_id}']!.get;
    const param = (name: string) => route.parameters.find((p) => p.name === name)!.schema;
    expect(param('format').enum).toEqual(['png', 'jpeg', 'webp', 'avif']);
    expect([param('width').minimum, param('width').maximum]).toEqual([16, 4096]);
    expect([param('quality').minimum, param('quality').maximum]).toEqual([1, 100]);
    expect(route.responses['422']!.description).toMatch(/width.*16 to 4096/);
  });

  it('a variant is served like the original: its own ETag, 304, Range, HEAD, the same cache headers', async () => {
    const url = `${base}&format=webp&width=128`;
    const original = await fetchOk(base);
    const full = await fetchOk(url);
    const etag = full.headers.get('etag')!;
    expect(etag).toMatch(/^".+-w128\.q80\.webp-\d+"$/);
    expect(etag).not.toBe(original.headers.get('etag'));
    expect(full.headers.get('cache-control')).toBe(original.headers.get('cache-control'));
    expect(full.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    expect(Number(full.headers.get('content-length'))).toBe(full.bytes.length);

    const notModified = await fetch(url, { headers: { 'if-none-match': etag } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get('etag')).toBe(etag);

    const part = await fetch(url, { headers: { range: 'bytes=10-49' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 10-49/${full.bytes.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(full.bytes.subarray(10, 50))).toBe(true);
    const tail = await fetch(url, { headers: { range: 'bytes=-16' } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(full.bytes.subarray(-16))).toBe(true);
    expect((await fetch(url, { headers: { range: `bytes=${full.bytes.length}-` } })).status).toBe(416);

    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('etag')).toBe(etag);
    expect(Number(head.headers.get('content-length'))).toBe(full.bytes.length);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
  });

  it('a HEAD is enough to make a variant, and an unknown image is still a 404', async () => {
    const head = await fetch(`${base}&format=jpeg&width=64`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('image/jpeg');
    expect(await stack.app.store.exists(`images/${id}/0.png.w64.q80.jpg`)).toBe(true);
    expect((await fetch(`${stack.app.url}/api/image/${id}?index=3&format=webp`)).status).toBe(404);
    expect((await fetch(`${stack.app.url}/api/image/no-such-task?index=0&format=webp`)).status).toBe(404);
  });

  it('20 concurrent first requests for one variant make it once, and all get the same bytes', async () => {
    const key = `images/${id}/0.png.w300.q42.webp`;
    expect(await stack.app.store.exists(key)).toBe(false);
    const maker = variantMakerFor(stack.app.store);
    const madeBefore = maker.made;
    const puts = countPuts(stack.app.store, /\.w300\.q42\.webp$/);
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, () => fetchOk(`${base}&format=webp&width=300&quality=42`)));
      expect(puts.count()).toBe(1);
      expect(maker.made - madeBefore).toBe(1);
      for (const a of answers) expect(a.bytes.equals(answers[0]!.bytes)).toBe(true);
      expect(new Set(answers.map((a) => a.headers.get('etag'))).size).toBe(1);
      expect((await sharp(answers[0]!.bytes).metadata()).width).toBe(300);
      // The stored object is what was served; later requests read it and make nothing.
      const local = stack.app.store.localPath!(key);
      expect((await readFile(local)).equals(answers[0]!.bytes)).toBe(true);
      await fetchOk(`${base}&format=webp&width=300&quality=42`);
      expect(puts.count()).toBe(1);
    } finally {
      puts.restore();
    }
  });

  it('GraphQL: thumbnailUrl is a 256 wide WebP, url(format:, width:) a JPEG of that width', async () => {
    const data = await gqlData<{ task: { images: { url: string; jpeg: string; thumbnailUrl: string }[] } }>(
      stack.app.url,
      `query($id: ID!) { task(id: $id) { images { url jpeg: url(format: JPEG, width: 100, quality: 70) thumbnailUrl } } }`,
      { id },
    );
    const [image] = data.task.images;
    expect(image!.url).toBe(`/api/image/${id}?index=0`);
    expect(image!.thumbnailUrl).toBe(`/api/image/${id}?index=0&format=webp&width=256`);
    expect(image!.jpeg).toBe(`/api/image/${id}?index=0&format=jpeg&width=100&quality=70`);
    const thumb = await fetchOk(`${stack.app.url}${image!.thumbnailUrl}`);
    const thumbMeta = await sharp(thumb.bytes).metadata();
    expect([thumbMeta.format, thumbMeta.width, thumbMeta.height]).toEqual(['webp', 256, 128]);
    const jpeg = await sharp((await fetchOk(`${stack.app.url}${image!.jpeg}`)).bytes).metadata();
    expect([jpeg.format, jpeg.width, jpeg.height]).toEqual(['jpeg', 100, 50]);
  });

  it('GraphQL: a bad width or quality is an error naming the argument and its limit', async () => {
    for (const [args, field, limit] of [
      ['width: 8', 'width', '16 to 4096'],
      ['width: 5000', 'width', '16 to 4096'],
      ['quality: 0', 'quality', '1 to 100'],
    ] as const) {
      const { body } = await gqlResponse<unknown>(stack.app.url, `query($id: ID!) { task(id: $id) { images { url(${args}) } } }`, { id });
      expect(body.errors?.[0]?.message, args).toBe(`${field} must be a whole number from ${limit}`);
      expect(body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    }
    const { body } = await gqlResponse<unknown>(stack.app.url, `query($id: ID!) { task(id: $id) { images { url(format: GIF) } } }`, { id });
    expect(body.errors?.[0]?.message).toMatch(/ImageFormat/);
  });

  it('with keys: signed URLs carry the variant (the signature covers the image), answers stay private', async () => {
    const { key } = await createApiKey(stack.app.db, { name: 'variants' });
    await until('keys mode', async () => ((await (await fetch(`${stack.app.url}/health`)).json()) as { auth: string }).auth === 'keys');
    const owned = await generated(stack, '256x512', 1, bearer(key));
    await until('completed', async () => {
      const res = await fetch(`${stack.app.url}/api/task-status/${owned}`, { headers: bearer(key) });
      return ((await res.json()) as { status: string }).status === 'completed';
    }, 60_000);
    const data = await gqlData<{ task: { images: { thumbnailUrl: string; webp: string }[] } }>(
      stack.app.url,
      `query($id: ID!) { task(id: $id) { images { thumbnailUrl webp: url(format: WEBP, width: 64) } } }`,
      { id: owned },
      bearer(key),
    );
    const [image] = data.task.images;
    expect(image!.thumbnailUrl).toMatch(/\?index=0&exp=\d+&sig=[\w-]{43}&format=webp&width=256$/);
    // What an <img> sends: no key.
    const thumb = await fetchOk(`${stack.app.url}${image!.thumbnailUrl}`);
    expect(thumb.headers.get('cache-control')).toMatch(/^private, max-age=\d+$/);
    const meta = await sharp(thumb.bytes).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 256, 512]); // 256 wide already: not enlarged, not re-sized
    const small = await sharp((await fetchOk(`${stack.app.url}${image!.webp}`)).bytes).metadata();
    expect([small.width, small.height]).toEqual([64, 128]);
    // The signature still decides: changed, it is refused before any variant is looked at.
    const tampered = image!.webp.replace(/sig=./, (m) => (m.endsWith('A') ? 'sig=B' : 'sig=A'));
    expect((await fetch(`${stack.app.url}${tampered}`)).status).toBe(403);
    // A key that sees the task gets variants with the private cache header too.
    const withKey = await fetchOk(`${stack.app.url}/api/image/${owned}?index=0&format=avif&width=32`, { headers: bearer(key) });
    expect(withKey.headers.get('cache-control')).toBe('private, max-age=31536000, immutable');
    // No key and no signature: 401 before the parameters are even read.
    expect((await fetch(`${stack.app.url}/api/image/${owned}?index=0&width=1`)).status).toBe(401);
  }, 90_000);

  it('cleanup takes the variants with their task (folder store)', async () => {
    const variant = `images/${id}/0.png.w64.q80.jpg`;
    expect(await stack.app.store.exists(variant)).toBe(true);
    await deleteOldTasks({ db: stack.app.db, store: stack.app.store, days: 0 });
    expect(await stack.app.store.exists(`images/${id}/0.png`)).toBe(false);
    expect(await stack.app.store.exists(variant)).toBe(false);
  });
});

describe('rendering limits', () => {
  it('a Limiter never runs more than its slots at once, and runs every job in arrival order', async () => {
    const limiter = new Limiter(2);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        limiter.run(async () => {
          started.push(i);
          most = Math.max(most, ++running);
          await new Promise((r) => setTimeout(r, 5));
          running--;
        }),
      ),
    );
    expect(most).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // A failing job frees its slot.
    await expect(limiter.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await limiter.run(async () => 'next')).toBe('next');
  });

  it('an original above the pixel limit is refused by sharp before it is decoded, and nothing is stored', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kontext-variant-limit-'));
    try {
      const store = new FileStore(dir);
      await store.put('images/t/0.png', Readable.from([await makeImage('png', 200, 100)]));
      const maker = new VariantMaker(store, { maxInputPixels: 200 * 100 - 1 });
      const rendering = { format: 'webp', width: 50, quality: 80 } as const;
      await expect(maker.ensure('images/t/0.png', 'images/t/0.png.w50.q80.webp', rendering)).rejects.toThrow(/pixel limit/);
      expect(await store.exists('images/t/0.png.w50.q80.webp')).toBe(false);
      // At the limit it is made; a missing original is undefined, not an error.
      const atLimit = new VariantMaker(store, { maxInputPixels: 200 * 100 });
      expect((await atLimit.ensure('images/t/0.png', 'images/t/0.png.w50.q80.webp', rendering))?.size).toBeGreaterThan(0);
      expect(await atLimit.ensure('images/t/1.png', 'images/t/1.png.w50.q80.webp', rendering)).toBeUndefined();
      expect(atLimit.made).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('OUTPUT_FORMAT', () => {
  it('ResultStore converts what ComfyUI wrote into the output format, and keeps PNG stripping for png', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kontext-result-store-'));
    try {
      const store = new FileStore(join(dir, 'data'));
      const png = await makeImage('png', 96, 64);
      const download = async (_file: unknown, dest: string) => {
        await mkdir(dirname(dest), { recursive: true }); // ComfyBackend.download makes the folder
        await writeFile(dest, png);
        return { bytes: png.length, contentType: 'image/png' };
      };
      // ResultStore uses only url and download() of a backend.
      const server = { url: 'http://comfy.test', download } as unknown as ComfyBackend;
      const file = { filename: 'out.png', subfolder: '', type: 'output' };
      for (const [format, decoded, contentType, ext] of [
        ['webp', 'webp', 'image/webp', 'webp'],
        ['jpeg', 'jpeg', 'image/jpeg', 'jpg'],
        ['avif', 'heif', 'image/avif', 'avif'],
        ['png', 'png', 'image/png', 'png'],
      ] as const) {
        const stored = await new ResultStore(store, join(dir, 'tmp'), false, format).store(server, 'task-1', 0, file);
        expect(stored.file_path).toBe(`images/task-1/0.${ext}`);
        expect(stored.content_type).toBe(contentType);
        const bytes = await readFile(store.localPath(stored.file_path));
        expect(stored.bytes).toBe(bytes.length);
        const meta = await sharp(bytes).metadata();
        expect([meta.format, meta.width, meta.height, stored.width, stored.height]).toEqual([decoded, 96, 64, 96, 64]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('OUTPUT_FORMAT=webp: the service stores WebP (row content type, file name) and serves WebP', async () => {
    const stack = await startStack({ config: { outputFormat: 'webp' } });
    try {
      const id = await generated(stack, '256x256');
      const row = await stack.app.db.selectFrom('images').selectAll().where('task_id', '=', id).executeTakeFirstOrThrow();
      expect(row.content_type).toBe('image/webp');
      expect(row.file_path).toBe(`images/${id}/0.webp`);
      const { bytes, headers } = await fetchOk(`${stack.app.url}/api/image/${id}?index=0`);
      expect(headers.get('content-type')).toBe('image/webp');
      expect(bytes.length).toBe(row.bytes);
      expect((await sharp(bytes).metadata()).format).toBe('webp');
      // format=webp of a WebP original is the original; a PNG of it is a variant.
      expect((await fetchOk(`${stack.app.url}/api/image/${id}?index=0&format=webp`)).headers.get('etag')).toBe(headers.get('etag'));
      const asPng = await fetchOk(`${stack.app.url}/api/image/${id}?index=0&format=png&width=100`);
      expect((await sharp(asPng.bytes).metadata()).format).toBe('png');
    } finally {
      await stack.close();
    }
  }, 90_000);
});

describe('image variants in S3', () => {
  let s3: S3Server;
  let restoreEnv: () => void;
  let stack: Stack;
  beforeAll(async () => {
    s3 = await startS3(['kontext-variants']);
    restoreEnv = s3.applyEnv();
    stack = await startStack({ config: { storageUrl: `s3://${s3.bucket}/gateway` } });
  }, 60_000);
  afterAll(async () => {
    await stack.close();
    restoreEnv();
    await s3.close();
  });

  it('a variant is made from the object, stored beside it in the bucket, and served with Range', async () => {
    const id = await generated(stack);
    const url = `${stack.app.url}/api/image/${id}?index=0&format=webp&width=128`;
    const { bytes } = await fetchOk(url);
    const meta = await sharp(bytes).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', 128, 64]);
    expect(stack.app.store.localPath).toBeUndefined();
    expect((await stack.app.store.stat(`images/${id}/0.png.w128.q80.webp`))?.size).toBe(bytes.length);
    const part = await fetch(url, { headers: { range: 'bytes=0-11' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(0, 12))).toBe(true);
  }, 90_000);
});
