#!/usr/bin/env node
// Runs the CLI: the compiled JavaScript in dist/ when it is up to date with src/ (bin/dist.mjs
// builds it after `npm install` and says how "up to date" is decided), else the TypeScript in
// src/ through tsx, so a checkout being edited works with no build step, only a slower start.
import { staleness } from './dist.mjs';

let main;
if (staleness() === null) {
  ({ main } = await import('../dist/cli/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
