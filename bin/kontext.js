#!/usr/bin/env node
// The `kontext` command of the package: runs the TypeScript CLI through tsx, so no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
