import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, solid } from '../simulator/images.js';
import { stripPngMetadata } from '../src/images/strip-png-metadata.js';
import { makeImage, PNG_SIGNATURE, pngChunk } from './helpers/images.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kontext-strip-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The chunks of a PNG as [type, whole chunk bytes]. */
function chunks(png: Buffer): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (let at = 8; at < png.length; ) {
    const end = at + 12 + png.readUInt32BE(at);
    out.push([png.toString('latin1', at + 4, at + 8), png.subarray(at, end)]);
    at = end;
  }
  return out;
}

const pixels = async (png: Buffer) => (await sharp(png).raw().toBuffer()).toString('base64');
const ihdrEnd = (png: Buffer) => 8 + 12 + png.readUInt32BE(8);

describe('stripPngMetadata', () => {
  it('removes tEXt, iTXt and zTXt and keeps every other chunk byte for byte', async () => {
    const png = await makeImage('png', 40, 30);
    const workflow = JSON.stringify({ nodes: [{ type: 'CLIPTextEncode', widgets_values: ['a secret prompt'] }] });
    const tEXt = pngChunk('tEXt', Buffer.from(`prompt\0${JSON.stringify({ 6: { inputs: { text: 'a secret prompt' } } })}`, 'latin1'));
    const iTXt = pngChunk('iTXt', Buffer.concat([Buffer.from('workflow\0\0\0\0\0', 'latin1'), Buffer.from(workflow, 'utf8')]));
    const zTXt = pngChunk('zTXt', Buffer.concat([Buffer.from('Comment\0\0', 'latin1'), deflateSync('a secret prompt')]));
    // Text before and after the image data, as encoders put it in either place.
    const idatAt = png.indexOf('IDAT', 0, 'latin1') - 4;
    const tagged = Buffer.concat([png.subarray(0, ihdrEnd(png)), tEXt, iTXt, png.subarray(ihdrEnd(png), idatAt), png.subarray(idatAt, png.length - 12), zTXt, png.subarray(png.length - 12)]);
    expect(tagged.includes('a secret prompt')).toBe(true);
    const file = join(dir, 'tagged.png');
    await writeFile(file, tagged);

    const size = await stripPngMetadata(file);

    const out = await readFile(file);
    expect(size).toBe(out.length);
    expect(size).toBe(tagged.length - tEXt.length - iTXt.length - zTXt.length);
    expect(out.includes('a secret prompt')).toBe(false);
    expect(out.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    const kept = chunks(tagged).filter(([type]) => !['tEXt', 'iTXt', 'zTXt'].includes(type));
    expect(chunks(out)).toEqual(kept);
    expect(await pixels(out)).toBe(await pixels(png));
    // No temp file is left next to it.
    expect((await readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('strips the simulator’s ComfyUI-style output (prompt and workflow in tEXt)', async () => {
    const img = solid(32, 24, [10, 200, 30]);
    const png = await encodePng(img, 6, [
      ['prompt', JSON.stringify({ 3: { class_type: 'KSampler' } })],
      ['workflow', JSON.stringify({ nodes: [] })],
    ]);
    expect(chunks(png).filter(([t]) => t === 'tEXt')).toHaveLength(2);
    const file = join(dir, 'comfy.png');
    await writeFile(file, png);

    const size = await stripPngMetadata(file);

    const out = await readFile(file);
    expect(size).toBe(out.length);
    expect(chunks(out)).toEqual(chunks(png).filter(([t]) => t !== 'tEXt'));
    expect(out.includes('KSampler')).toBe(false);
    expect(await pixels(out)).toBe(await pixels(png));
  });

  it('leaves a PNG without text chunks, a non-PNG and a truncated PNG untouched', async () => {
    const plain = join(dir, 'plain.png');
    await writeFile(plain, await makeImage('png', 20, 20));
    const jpeg = join(dir, 'photo.jpg');
    await writeFile(jpeg, await makeImage('jpeg', 20, 20));
    const cut = join(dir, 'cut.png');
    const withText = Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', Buffer.alloc(13)), pngChunk('tEXt', Buffer.from('prompt\0x'))]);
    await writeFile(cut, withText.subarray(0, withText.length - 3));

    for (const file of [plain, jpeg, cut]) {
      const before = await readFile(file);
      const { ino } = await stat(file);
      expect(await stripPngMetadata(file)).toBe(before.length);
      expect((await readFile(file)).equals(before)).toBe(true);
      expect((await stat(file)).ino).toBe(ino); // not rewritten
    }
  });

  it('rejects when the file does not exist', async () => {
    await expect(stripPngMetadata(join(dir, 'missing.png'))).rejects.toThrow(/ENOENT/);
  });
});
