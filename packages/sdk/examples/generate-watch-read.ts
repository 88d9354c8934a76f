/**
 * A complete consumer of @kontext-gateway/sdk, as an app would write it after `npm install`:
 * generate two images from a reference image, watch them being made over graphql-ws, read the
 * finished task and download its images. test/sdk-package.test.ts runs it against a real service
 * from an empty project that installed the packed tarball; the README shows the same code.
 *
 *   KONTEXT_URL=http://127.0.0.1:9000 KONTEXT_API_KEY=kx_... node generate-watch-read.js car.png "make it night"
 *
 * Prints one line per progress frame and per image, then a JSON summary as its last line.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import WebSocket from 'ws';
import { createKontextClient, KontextError, type TaskProgress } from '@kontext-gateway/sdk';

const base = process.env.KONTEXT_URL ?? 'http://127.0.0.1:9000';
const [imagePath, description = 'make it night'] = process.argv.slice(2);
if (!imagePath) throw new Error('usage: generate-watch-read <reference image> [instruction]');

// Node 20 has no global WebSocket: pass the `ws` package's (browsers and Node 22+ need nothing).
const kontext = createKontextClient({ url: `${base}/graphql`, apiKey: process.env.KONTEXT_API_KEY, webSocketImpl: WebSocket });

try {
  const result = await kontext.generate({
    referenceImage: await readFile(imagePath),
    fileName: basename(imagePath),
    description,
    count: 2,
    size: '256x256',
    steps: 4,
  });
  // Refusals are typed results, not exceptions: a ValidationError names the field it is about.
  if (result.__typename === 'ValidationError') throw new Error(`invalid ${result.field}: ${result.message}`);
  if (result.__typename !== 'GenerateSuccess') throw new Error(`${result.__typename}: ${result.message}`);
  const id = result.task.id;
  console.log(`task ${id} queued, seed ${result.task.seed}`);

  const frames: TaskProgress[] = [];
  for await (const frame of kontext.watch(id)) {
    frames.push(frame);
    const image = frame.imageIndex === null ? '' : ` image ${frame.imageIndex + 1}: step ${frame.step ?? 0}/${frame.totalSteps ?? '?'}`;
    console.log(`frame ${frame.seq} ${frame.status} ${frame.progress}%${image}`);
  }

  const task = await kontext.task(id);
  if (!task) throw new Error(`task ${id} is gone`);
  const files: { index: number; file: string; bytes: number }[] = [];
  for (const image of task.images) {
    // Image URLs are relative to the service (unless it sets PUBLIC_URL) and signed once keys exist.
    const res = await fetch(new URL(image.url, base));
    if (!res.ok) throw new Error(`image ${image.index}: HTTP ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const file = `${id}-${image.index}.${image.contentType.split('/')[1] ?? 'bin'}`;
    await writeFile(file, bytes);
    files.push({ index: image.index, file, bytes: bytes.length });
    console.log(`image ${image.index}: ${image.width}x${image.height}, seed ${image.seed}, ${bytes.length} bytes -> ${file}`);
  }
  console.log(JSON.stringify({ id, status: task.status, progress: task.progress, frames: frames.map((f) => [f.seq, f.status, f.progress]), images: task.images, files }));
} catch (err) {
  // KontextError: the request was refused (err.status: 401 for a wrong key) or had GraphQL errors.
  console.error(err instanceof KontextError ? `kontext: ${err.message} (HTTP ${err.status ?? '-'})` : err);
  process.exitCode = 1;
} finally {
  await kontext.close();
}
