/** `npm run schema`: writes schema.graphql, the printed and sorted Pothos schema (the checked-in contract). */
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lexicographicSortSchema, printSchema } from 'graphql';
import { schema } from './schema/index.js';

/** The SDL as checked in: sorted, so a diff shows only real changes. */
export function printedSchema(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const target = new URL('../../schema.graphql', import.meta.url);
  writeFileSync(target, printedSchema());
  console.log(`wrote ${relative(process.cwd(), fileURLToPath(target))}`);
}
