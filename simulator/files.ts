/**
 * Folder and path rules of ComfyUI's `folder_paths.py` and of the `/view` and `/upload/image`
 * routes (docs/comfyui-protocol.md §2.6, §2.7, §5). Paths follow Python's `os.path` semantics (POSIX), so the
 * same inputs give the same 400/403/404 answers and the same file names as the real server.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { PyException } from './py.js';

/** The three folders under the base directory. */
export interface Folders {
  input: string;
  output: string;
  temp: string;
}

/** `input`, `output` or `temp`. */
export type FolderType = keyof Folders;

/** `os.path.normpath` (POSIX). */
export function pyNormpath(p: string): string {
  if (p === '') return '.';
  let initial = p.startsWith('/') ? 1 : 0;
  if (initial && p.startsWith('//') && !p.startsWith('///')) initial = 2;
  const out: string[] = [];
  for (const comp of p.split('/')) {
    if (comp === '' || comp === '.') continue;
    if (comp !== '..' || (!initial && out.length === 0) || (out.length > 0 && out[out.length - 1] === '..')) out.push(comp);
    else if (out.length > 0) out.pop();
  }
  const joined = '/'.repeat(initial) + out.join('/');
  return joined || '.';
}

/** `os.path.join(a, b)` (POSIX): an absolute `b` replaces `a`; nothing is normalized. */
export function pyJoin(a: string, ...rest: string[]): string {
  let out = a;
  for (const b of rest) {
    if (b.startsWith('/')) out = b;
    else if (out === '' || out.endsWith('/')) out += b;
    else out += `/${b}`;
  }
  return out;
}

/** `os.path.basename`. */
export function pyBasename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** `os.path.dirname`. */
export function pyDirname(p: string): string {
  const head = p.slice(0, p.lastIndexOf('/') + 1);
  return head && head !== '/'.repeat(head.length) ? head.replace(/\/+$/, '') : head;
}

/** `os.path.abspath`: absolute and normalized, symlinks not resolved. */
export function pyAbspath(p: string): string {
  return pyNormpath(p.startsWith('/') ? p : pyJoin(process.cwd(), p));
}

/** True when `os.path.commonpath((base, abspath(p))) == base`, i.e. `p` stays inside `base`. */
export function isInside(base: string, p: string): boolean {
  const abs = pyAbspath(p);
  return abs === base || abs.startsWith(base.endsWith('/') ? base : `${base}/`);
}

/** The folder of a `type` value (`get_directory_by_type`), or null for anything else. */
export function folderByType(folders: Folders, type: string | null | undefined): string | null {
  if (type === 'output' || type === 'input' || type === 'temp') return folders[type];
  return null;
}

/**
 * `folder_paths.annotated_filepath`: a name ending in `[output]`, `[input]` or `[temp]` picks that
 * folder; the suffix and the character before it are cut (so `x.png [output]` gives `x.png`).
 */
export function annotatedFilepath(name: string, folders: Folders): { name: string; base: string | null } {
  if (name.endsWith('[output]')) return { name: name.slice(0, -9), base: folders.output };
  if (name.endsWith('[input]')) return { name: name.slice(0, -8), base: folders.input };
  if (name.endsWith('[temp]')) return { name: name.slice(0, -7), base: folders.temp };
  return { name, base: null };
}

/**
 * `folder_paths.get_annotated_filepath`, looked up in input/ without a suffix. Unlike ComfyUI the
 * simulator refuses names that leave their folder (returns null), so a prompt cannot read
 * arbitrary files of the machine.
 */
export function annotatedPath(name: string, folders: Folders): string | null {
  const a = annotatedFilepath(name, folders);
  const base = a.base ?? folders.input;
  const full = pyJoin(base, a.name);
  return isInside(base, full) ? pyAbspath(full) : null;
}

/** `folder_paths.exists_annotated_filepath` (a directory also "exists", as in ComfyUI). */
export function existsAnnotated(name: string, folders: Folders): boolean {
  const p = annotatedPath(name, folders);
  if (p === null) return false;
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** sha256 hex of a file (LoadImage's IS_CHANGED). */
export async function fileSha256(p: string): Promise<string> {
  return createHash('sha256').update(await fsp.readFile(p)).digest('hex');
}

/** Result of `folder_paths.get_save_image_path`. */
export interface SavePath {
  fullOutputFolder: string;
  filename: string;
  counter: number;
  subfolder: string;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/**
 * `folder_paths.get_save_image_path`: expands `%width%`-style variables, splits off the subfolder,
 * refuses to leave the output folder, and finds the next counter (1 + the highest `<prefix>_NNNNN`).
 */
export async function getSaveImagePath(prefix: string, outputDir: string, width: number, height: number): Promise<SavePath> {
  let filenamePrefix = prefix;
  if (filenamePrefix.includes('%')) {
    const now = new Date();
    filenamePrefix = filenamePrefix
      .replaceAll('%width%', String(width))
      .replaceAll('%height%', String(height))
      .replaceAll('%year%', String(now.getFullYear()))
      .replaceAll('%month%', pad2(now.getMonth() + 1))
      .replaceAll('%day%', pad2(now.getDate()))
      .replaceAll('%hour%', pad2(now.getHours()))
      .replaceAll('%minute%', pad2(now.getMinutes()))
      .replaceAll('%second%', pad2(now.getSeconds()));
  }
  const norm = pyNormpath(filenamePrefix);
  const subfolder = pyDirname(norm);
  const filename = pyBasename(norm);
  const fullOutputFolder = pyJoin(outputDir, subfolder);
  if (!isInside(outputDir, fullOutputFolder)) {
    const abs = pyAbspath(fullOutputFolder);
    throw new PyException(
      'Exception',
      '**** ERROR: Saving image outside the output folder is not allowed.' +
        `\n full_output_folder: ${abs}` +
        `\n         output_dir: ${outputDir}` +
        `\n         commonpath: ${commonPath(outputDir, abs)}`,
    );
  }
  const prefixLen = pyBasename(filenamePrefix).length;
  let counter = 1;
  let names: string[];
  try {
    names = await fsp.readdir(fullOutputFolder);
  } catch {
    await fsp.mkdir(fullOutputFolder, { recursive: true });
    names = [];
  }
  let best = -1;
  for (const name of names) {
    const head = name.slice(0, prefixLen + 1);
    if (head.slice(0, -1) !== filename || head.slice(-1) !== '_') continue;
    const m = /^\s*[+-]?\d+\s*$/.exec(name.slice(prefixLen + 1).split('_')[0] ?? '');
    const digits = m ? parseInt(m[0], 10) : 0;
    if (digits > best) best = digits;
  }
  if (best >= 0) counter = best + 1;
  return { fullOutputFolder: pyAbspath(fullOutputFolder), filename, counter, subfolder };
}

function commonPath(a: string, b: string): string {
  const pa = a.split('/');
  const pb = b.split('/');
  const out: string[] = [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) break;
    out.push(pa[i] ?? '');
  }
  return out.join('/') || '/';
}

const MIME: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.jpe': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.bmp': 'image/bmp',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.ico': 'image/vnd.microsoft.icon',
  '.svg': 'image/svg+xml',
  '.avif': 'image/avif',
  '.heic': 'image/heic',
  '.json': 'application/json',
  '.txt': 'text/plain',
  '.html': 'text/html',
  '.htm': 'text/html',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.css': 'text/css',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mov': 'video/quicktime',
  '.mp3': 'audio/mpeg',
  '.wav': 'audio/x-wav',
  '.flac': 'audio/flac',
  '.ogg': 'audio/ogg',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.safetensors': 'application/octet-stream',
};

/** `mimetypes.guess_type(name)[0]`, or null. */
export function guessMime(name: string): string | null {
  return MIME[path.extname(name).toLowerCase()] ?? null;
}

/** Files LoadImage lists in `/object_info`: regular files of input/ (top level) with an image type, sorted. */
export function listInputImages(inputDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(inputDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => {
      try {
        return statSync(path.join(inputDir, n)).isFile() && (guessMime(n) ?? '').startsWith('image/');
      } catch {
        return false;
      }
    })
    .sort(codepointCompare);
}

/** Python's default string ordering (by code point). */
export function codepointCompare(a: string, b: string): number {
  if (a === b) return 0;
  const ia = [...a];
  const ib = [...b];
  for (let i = 0; i < Math.min(ia.length, ib.length); i++) {
    const ca = ia[i]?.codePointAt(0) ?? 0;
    const cb = ib[i]?.codePointAt(0) ?? 0;
    if (ca !== cb) return ca - cb;
  }
  return ia.length - ib.length;
}
