/**
 * `POST /upload/image` (docs/comfyui-protocol.md §2.7): multipart parsing with aiohttp's field semantics, the
 * type/subfolder rules, and the collision handling (same content → same name, else `name (1).ext`).
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import busboy from 'busboy';
import { type Folders, isInside, pyAbspath, pyBasename, pyJoin, pyNormpath } from './files.js';
import { empty, json, type Reply } from './http.js';
import { PyException } from './py.js';

/** A multipart part as aiohttp's `post()` gives it: a file, a str, or bytes. */
type Part = { kind: 'file'; filename: string; data: Buffer } | { kind: 'text'; value: string } | { kind: 'bytes'; value: Buffer };

/** Parses a form body; anything that is not multipart or urlencoded gives no fields (aiohttp too). */
export function parseForm(headers: IncomingHttpHeaders, body: Buffer): Promise<Map<string, Part>> {
  return new Promise((resolve, reject) => {
    const parts = new Map<string, Part>();
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers,
        preservePath: true,
        defParamCharset: 'utf8',
        limits: { fieldSize: Infinity, fileSize: Infinity, fields: Infinity, files: Infinity, parts: Infinity },
      });
    } catch {
      resolve(parts);
      return;
    }
    const add = (name: string, part: Part): void => {
      if (!parts.has(name)) parts.set(name, part); // post().get() returns the first value
    };
    bb.on('file', (name, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const data = Buffer.concat(chunks);
        if (info.filename) add(name, { kind: 'file', filename: info.filename, data });
        else add(name, { kind: 'bytes', value: data }); // an empty filename makes it a plain field
      });
    });
    bb.on('field', (name, value, info) => {
      if (info.mimeType && !info.mimeType.startsWith('text/')) add(name, { kind: 'bytes', value: Buffer.from(value, 'latin1') });
      else add(name, { kind: 'text', value });
    });
    bb.on('close', () => resolve(parts));
    bb.on('error', (err) => reject(new PyException('ValueError', String(err))));
    bb.end(body);
  });
}

/** os.path.splitext. */
function splitext(p: string): [string, string] {
  const base = pyBasename(p);
  const dot = base.lastIndexOf('.');
  if (dot <= 0 || /^\.+$/.test(base.slice(0, dot + 1))) return [p, ''];
  const cut = p.length - (base.length - dot);
  return [p.slice(0, cut), p.slice(cut)];
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.stat(p);
    return true;
  } catch {
    return false;
  }
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Handles an upload body; errors ComfyUI answers with 500 are thrown. */
export async function handleUpload(headers: IncomingHttpHeaders, body: Buffer, folders: Folders): Promise<Reply> {
  const form = await parseForm(headers, body);
  const image = form.get('image');
  const typePart = form.get('type');
  const type = typePart === undefined ? 'input' : typePart.kind === 'text' ? typePart.value : null;
  if (type !== 'input' && type !== 'temp' && type !== 'output') {
    throw new PyException('UnboundLocalError', "cannot access local variable 'type_dir' where it is not associated with a value");
  }
  const uploadDir = folders[type];
  if (!image) return empty(400);
  if (image.kind !== 'file') {
    if (image.value.length === 0) return empty(400);
    throw new PyException('AttributeError', `'${image.kind === 'text' ? 'str' : 'bytearray'}' object has no attribute 'file'`);
  }
  let filename = image.filename;
  const subPart = form.get('subfolder');
  if (subPart !== undefined && subPart.kind !== 'text') throw new PyException('TypeError', 'expected str, bytes or os.PathLike object');
  const subfolder = subPart?.value ?? '';
  const fullOutputFolder = pyJoin(uploadDir, pyNormpath(subfolder));
  let filepath = pyAbspath(pyJoin(fullOutputFolder, filename));
  if (!isInside(uploadDir, filepath)) return empty(400);
  if (!(await exists(fullOutputFolder))) await fsp.mkdir(fullOutputFolder, { recursive: true });

  const overwrite = form.get('overwrite');
  const overwriteOn = overwrite?.kind === 'text' && (overwrite.value === 'true' || overwrite.value === '1');
  let duplicate = false;
  if (!overwriteOn) {
    const [stem, ext] = splitext(filename);
    const digest = sha(image.data);
    for (let i = 1; await exists(filepath); i++) {
      if (sha(await fsp.readFile(filepath)) === digest) {
        duplicate = true;
        break;
      }
      filename = `${stem} (${i})${ext}`;
      filepath = pyJoin(fullOutputFolder, filename);
    }
  }
  if (!duplicate) await fsp.writeFile(filepath, image.data);
  return json(new Map([['name', filename], ['subfolder', subfolder], ['type', type]]));
}
