/**
 * How to start one of our modules as a process or a thread of its own. Compiled to dist/
 * (bin/dist.mjs), the module is JavaScript and runs as it is; from src/ (tsx, vitest) it is
 * TypeScript and the child needs tsx's loader. Whichever the caller is, the child is the same
 * kind.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

export interface NodeScript {
  /** The file to run. */
  file: string;
  /** Node options the child needs to run it. */
  execArgv: string[];
}

/** The module at `relative` from the caller (`import.meta.url`, path without extension), and whether it is compiled. */
function moduleFile(callerUrl: string, relative: string): { file: string; compiled: boolean } {
  const compiled = callerUrl.endsWith('.js');
  return { file: fileURLToPath(new URL(`${relative}${compiled ? '.js' : '.ts'}`, callerUrl)), compiled };
}

/** `relative` is the module's path from the caller (`import.meta.url`), without extension. */
export function nodeScript(callerUrl: string, relative: string): NodeScript {
  const { file, compiled } = moduleFile(callerUrl, relative);
  if (compiled) return { file, execArgv: [] };
  const tsx = pathToFileURL(createRequire(callerUrl).resolve('tsx')).href;
  return { file, execArgv: ['--import', tsx] };
}

/**
 * Starts the module at `relative` (as for nodeScript) on a worker thread. From src/ the thread
 * first registers tsx's loader itself: Node 20 gives a worker neither the loader hooks of the
 * thread that starts it nor an `--import` in its execArgv.
 */
export function nodeWorker(callerUrl: string, relative: string, options: WorkerOptions = {}): Worker {
  const { file, compiled } = moduleFile(callerUrl, relative);
  if (compiled) return new Worker(file, options);
  const start = `import(${JSON.stringify(tsxEsmApi(callerUrl))}).then((tsx) => {
    tsx.register();
    return import(${JSON.stringify(pathToFileURL(file).href)});
  });`;
  return new Worker(start, { execArgv: [], ...options, eval: true });
}

/** The file URL of `tsx/esm/api` as `import` finds it (require.resolve gives its CommonJS build). */
function tsxEsmApi(callerUrl: string): string {
  const manifest = createRequire(callerUrl).resolve('tsx/package.json');
  const exports = JSON.parse(readFileSync(manifest, 'utf8')).exports as Record<string, { import: string | { default: string } }>;
  const entry = exports['./esm/api'].import;
  return pathToFileURL(path.join(path.dirname(manifest), typeof entry === 'string' ? entry : entry.default)).href;
}
