/**
 * How to start one of our modules as a process of its own. Compiled to dist/ (bin/dist.mjs),
 * the module is JavaScript and runs as it is; from src/ (tsx, vitest) it is TypeScript and the
 * child needs tsx's loader. Whichever the caller is, the child is the same kind.
 */
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface NodeScript {
  /** The file to run. */
  file: string;
  /** Node options the child needs to run it. */
  execArgv: string[];
}

/** `relative` is the module's path from the caller (`import.meta.url`), without extension. */
export function nodeScript(callerUrl: string, relative: string): NodeScript {
  const compiled = callerUrl.endsWith('.js');
  const file = fileURLToPath(new URL(`${relative}${compiled ? '.js' : '.ts'}`, callerUrl));
  if (compiled) return { file, execArgv: [] };
  const tsx = pathToFileURL(createRequire(callerUrl).resolve('tsx')).href;
  return { file, execArgv: ['--import', tsx] };
}
