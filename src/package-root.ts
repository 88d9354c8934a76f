/**
 * The folder holding this package's package.json, found upward from this module, so that files
 * shipped beside the code (workflows/, playground/dist/, package.json) resolve the same from the
 * TypeScript sources (src/, under tsx) and from the bundle `npm start` runs (dist/main.js).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's name in its package.json: a nested package.json (packages/sdk) is passed over. */
const NAME = 'kontext-gateway';

/** The nearest folder at or above `from` whose package.json is named `name`; throws when there is none. */
export function findPackageRoot(from: string, name: string = NAME): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === name) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json named ${name} at or above ${from}`);
  }
}

/** This package's root folder. */
export const PACKAGE_ROOT: string = findPackageRoot(dirname(fileURLToPath(import.meta.url)));
