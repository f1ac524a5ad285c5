#!/usr/bin/env node
// Runs the CLI: the compiled JavaScript in dist/ when it is up to date with src/ (bin/dist.mjs
// builds it after `npm install` and says how "up to date" is decided), else the TypeScript in
// src/ through tsx, so a checkout being edited works with no build step, only a slower start.
import v8 from 'node:v8';
import { staleness } from './dist.mjs';

// Commands that only read and write the database spend most of their CPU having V8 optimise
// Prisma's query compiler (WebAssembly), which a command this short never profits from; the
// baseline compiler alone halves `sweep status`'s CPU (bench/cli.ts). Not for the commands
// that run TensorFlow.js's WebAssembly in this process (train, predict, eval, worker, data), nor
// for `dashboard`, which polls the database every second for hours and gains from optimised code.
const DATABASE_ONLY = new Set(['status', 'show', 'cancel', 'launch', 'plan', 'db', 'wandb', 'ensemble', 'export']);
if (DATABASE_ONLY.has(process.argv[2] ?? '')) v8.setFlagsFromString('--liftoff-only');

let main;
if (staleness() === null) {
  ({ main } = await import('../dist/cli/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
