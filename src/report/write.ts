/**
 * `sweep report`'s work: read the sweep, shape it, render the page, write it atomically (a
 * temporary file beside the target, renamed over it), so a report is whole or absent.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PrismaClient } from '../infra/db.ts';
import type { Env } from '../infra/env.ts';
import { loadReportInput } from './data.ts';
import { renderReport } from './html.ts';
import { buildReport, secretValues } from './model.ts';

export interface WrittenReport {
  out: string;
  bytes: number;
  trials: number;
}

/**
 * The ECharts the page uses, as one browser script: the chart types and components it draws
 * (lines, line, scatter, parallel; grid, legend, tooltip, title, visual map, mark lines) bundled
 * from ECharts' modules with esbuild (tsx's own), about 60% of the complete build, which is
 * that much less for a browser to parse before the first chart. Built once per ECharts version
 * into the user's cache directory (XDG_CACHE_HOME or ~/.cache, sweep/; not the shared temporary
 * directory, whose files anyone could have written); the complete minified build if bundling fails.
 */
const ECHARTS_ENTRY = `
import * as echarts from 'echarts/core';
import { LinesChart, LineChart, ParallelChart, ScatterChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent, TitleComponent, VisualMapContinuousComponent, ParallelComponent, MarkLineComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
echarts.use([LinesChart, LineChart, ParallelChart, ScatterChart, GridComponent, LegendComponent, TooltipComponent, TitleComponent, VisualMapContinuousComponent, ParallelComponent, MarkLineComponent, CanvasRenderer]);
globalThis.echarts = echarts;
`;

let echartsCache: string | null = null;

export function echartsSource(): string {
  if (echartsCache) return echartsCache;
  const require = createRequire(import.meta.url);
  const version = (require('echarts/package.json') as { version: string }).version;
  const key = createHash('sha256').update(version).update(ECHARTS_ENTRY).digest('hex').slice(0, 16);
  const dir = path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'sweep');
  const file = path.join(dir, `echarts-${key}.js`);
  try {
    echartsCache = readFileSync(file, 'utf8');
    return echartsCache;
  } catch {
    // not built yet
  }
  try {
    const esbuild = createRequire(require.resolve('tsx/package.json'))('esbuild') as typeof import('esbuild');
    const out = esbuild.buildSync({
      stdin: { contents: ECHARTS_ENTRY, resolveDir: path.dirname(fileURLToPath(import.meta.url)), loader: 'js' },
      bundle: true,
      minify: true,
      format: 'iife',
      write: false,
      logLevel: 'silent',
    });
    echartsCache = out.outputFiles[0].text;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeAtomically(file, echartsCache);
  } catch {
    // A cache that cannot be written only costs the next process the build again.
    echartsCache ??= readFileSync(require.resolve('echarts/dist/echarts.min'), 'utf8');
  }
  return echartsCache;
}

/** `<sweep>-report.html`, with anything unsafe in a file name replaced. */
export function defaultReportPath(sweep: string): string {
  return `${sweep.replace(/[^\w.-]+/g, '_')}-report.html`;
}

/** Writes `text` to `file` through a temporary file in the same directory. */
export function writeAtomically(file: string, text: string): number {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
  return Buffer.byteLength(text);
}

export async function writeSweepReport(prisma: PrismaClient, sweep: string, opts: { out?: string; env?: Env; now?: Date } = {}): Promise<WrittenReport> {
  const env = opts.env ?? process.env;
  const input = await loadReportInput(prisma, sweep, { env, now: opts.now });
  const data = buildReport(input, secretValues(env));
  const html = renderReport(data, echartsSource());
  const out = path.resolve(opts.out ?? defaultReportPath(input.sweep.name));
  const bytes = writeAtomically(out, html);
  return { out, bytes, trials: input.trials.length };
}
