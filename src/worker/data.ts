/**
 * Where a sweep's data lives on this machine, and generating its synthetic data once. (What
 * the sweep file asks for: sweep/data-plan.ts; a trial's outputs: infra/artifacts.ts.)
 *
 *   <home>/data/<style>-<count>-s<seed>[-<case>][-<H>x<W>][-l<length>][-<charset>]/
 *       generated CAPTCHAs, made by the first worker that needs them and shared by the others
 *       on the machine. (Generation is deterministic, so each machine makes its own copy on
 *       local disk rather than reading a shared one.) The sweep's data shape, where it is not
 *       the report's, is part of the name: the images' size, the label length, the charset.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sweepHome, type Env } from '../infra/env.ts';
import { isAlive, readLock, releaseLock, tryAcquire } from '../infra/lockfile.ts';
import type { DataPlan, DataSource } from '../sweep/data-plan.ts';
import { GENERATOR_FONTS, type GenerateSpec } from '../sweep/schema.ts';
import { DEFAULT_SHAPE, type DataShape } from '../train/shape.ts';

export function generatedDir(g: GenerateSpec, shape: DataShape = DEFAULT_SHAPE, env: Env = process.env): string {
  // The default look and shape keep the names datasets had before either existed.
  const look = (g.case && g.case !== 'lower' ? `-${g.case}` : '') + (g.fonts ? `-fonts-${generatorFonts(g)!.join('+')}` : '');
  return path.join(sweepHome(env), 'data', `${g.style}-${g.count}-s${g.seed}${look}${shapeSuffix(shape)}`);
}

/** `-50x160-l4-0-9A-Z` for a shape that is not the report's ('' for it). */
export function shapeSuffix(shape: DataShape): string {
  let s = '';
  if (shape.height !== DEFAULT_SHAPE.height || shape.width !== DEFAULT_SHAPE.width) s += `-${shape.height}x${shape.width}`;
  if (shape.label.length !== DEFAULT_SHAPE.label.length) s += `-l${shape.label.length}`;
  if (shape.label.charset !== DEFAULT_SHAPE.label.charset) s += `-${charsetTag(shape.label.charset)}`;
  return s;
}

/** The charset as ranges (`0-9A-Z`) when it is letters and digits, else `c` and a hash of it. */
function charsetTag(charset: string): string {
  if (!/^[0-9A-Za-z]+$/.test(charset)) return `c${createHash('sha256').update(charset).digest('hex').slice(0, 10)}`;
  let out = '';
  for (let i = 0; i < charset.length; ) {
    let j = i;
    while (j + 1 < charset.length && charset.charCodeAt(j + 1) === charset.charCodeAt(j) + 1) j++;
    out += j - i >= 2 ? `${charset[i]}-${charset[j]}` : charset.slice(i, j + 1);
    i = j + 1;
  }
  return out;
}

/** The fonts a generate block names, `all` spelled out (so a font added later makes a new directory); undefined for the style's own. */
export function generatorFonts(g: GenerateSpec): Array<(typeof GENERATOR_FONTS)[number]> | undefined {
  return g.fonts === 'all' ? [...GENERATOR_FONTS] : g.fonts;
}

/** Directories of the plan that do not exist on this machine (launch warns about them). */
export function missingDirs(plan: DataPlan): string[] {
  return [plan.train, plan.val, plan.test]
    .filter((s): s is { dir: string } => s !== undefined && 'dir' in s)
    .map((s) => s.dir)
    .filter((d) => !existsSync(d));
}

/**
 * The directory holding the source's images, generating them first if needed. Generation
 * happens once per machine: one process holds `<dir>.lock` and writes to a temporary
 * directory that is renamed into place when complete, so a directory at the final path is
 * always a whole dataset, and processes waiting for it never read a partial one.
 */
export async function materialize(
  s: DataSource,
  opts: { shape?: DataShape; env?: Env; log?: (msg: string) => void; signal?: AbortSignal } = {},
): Promise<string> {
  if ('dir' in s) return s.dir;
  const shape = opts.shape ?? DEFAULT_SHAPE;
  const dir = generatedDir(s.generate, shape, opts.env);
  const lock = `${dir}.lock`;
  mkdirSync(path.dirname(dir), { recursive: true });
  let waited = false;
  for (;;) {
    if (existsSync(dir)) return dir;
    if (await tryAcquire(lock)) break;
    if (!waited) {
      const holder = await readLock(lock);
      opts.log?.(`waiting for ${holder && isAlive(holder.pid) ? `process ${holder.pid}` : 'another process'} to generate ${dir}`);
      waited = true;
    }
    opts.signal?.throwIfAborted();
    await sleep(250);
  }
  try {
    if (existsSync(dir)) return dir;
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    const g = s.generate;
    opts.log?.(`generating ${g.count} ${g.style} CAPTCHAs (seed ${g.seed}) into ${dir}`);
    try {
      // Loaded here: drawing loads the canvas library, which nothing else of this module needs.
      const { generateDataset } = await import('../data/generate/index.ts');
      const size = { height: shape.height, width: shape.width };
      const r = await generateDataset({ style: g.style, count: g.count, seed: g.seed, letterCase: g.case, fonts: generatorFonts(g), spec: shape.label, size, out: tmp, signal: opts.signal });
      renameSync(tmp, dir);
      opts.log?.(`generated ${g.count} images in ${r.seconds.toFixed(1)}s`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return dir;
  } finally {
    await releaseLock(lock);
  }
}
