#!/usr/bin/env node
// The `kontext` command of the package: runs the TypeScript CLI through tsx, so no build step.
import { register as registerHooks } from 'node:module';
import { register } from 'tsx/esm/api';

register();
// Workspace packages (the SDK) from their TypeScript sources, never a stale dist/; registered last,
// so it runs before tsx's resolver.
registerHooks(
  'data:text/javascript,' +
    encodeURIComponent("export function resolve(s, c, next) { return next(s, { ...c, conditions: [...c.conditions, '@kontext-gateway/source'] }); }"),
);
await import('../src/cli/main.ts');
