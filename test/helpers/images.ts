/** Test images, made on the fly rather than committed. */
// zlib.crc32 is in every Node that package.json's engines allow (20.15+, 22.2+).
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';

/** A small solid-colour image. */
export function makeImage(format: 'png' | 'jpeg' | 'webp', width = 64, height = 48, colour = { r: 200, g: 80, b: 20 }): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: colour } })
    [format]()
    .toBuffer();
}

/** One PNG chunk with its length and CRC. */
export function pngChunk(type: string, data: Buffer): Buffer {
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A small, well-formed PNG whose IHDR claims `width` x `height`: a decompression bomb's header. */
export function pngClaiming(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(1024))), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A valid PNG of exactly `bytes` bytes: a small image with a text chunk after its header as padding. */
export async function pngOfSize(bytes: number): Promise<Buffer> {
  const png = await makeImage('png', 64, 48);
  const headerEnd = PNG_SIGNATURE.length + 25; // signature + IHDR chunk
  const padding = bytes - png.length - 12; // a chunk adds 12 bytes around its data
  if (padding < 0) throw new Error(`pngOfSize: ${bytes} bytes is smaller than the image itself`);
  const text = Buffer.concat([Buffer.from('Comment\0', 'latin1'), Buffer.alloc(padding - 8, 'x')]);
  const out = Buffer.concat([png.subarray(0, headerEnd), pngChunk('tEXt', text), png.subarray(headerEnd)]);
  if (out.length !== bytes) throw new Error(`pngOfSize: made ${out.length} bytes instead of ${bytes}`);
  return out;
}
