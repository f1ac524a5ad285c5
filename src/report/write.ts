/**
 * `sweep report`'s work: read the sweep, shape it, render the page, write it atomically (a
 * temporary file beside the target, renamed over it), so a report is whole or absent.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
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

/** The ECharts build the page inlines (the complete minified one: every chart type, no network). */
export function echartsSource(): string {
  const require = createRequire(import.meta.url);
  return readFileSync(require.resolve('echarts/dist/echarts.min'), 'utf8');
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
