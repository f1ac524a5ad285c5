import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Rng } from '../../util/rng.ts';
import { UserError } from '../../util/errors.ts';
import { DEFAULT_LABEL_SPEC, type LabelSpec } from '../charset.ts';
import { FONT_NAMES, isFontName, type FontName } from './fonts.ts';
import { sizeProblem, specProblem, type ImageSize } from '../../train/draw-limits.ts';
import { renderHard } from './hard.ts';
import { renderRailway } from './railway.ts';
import type { Captcha } from './types.ts';

export type { Captcha } from './types.ts';
export { WIDTH, HEIGHT, LETTER_CASES, type LetterCase } from './draw.ts';
export { FONT_NAMES, type FontName } from './fonts.ts';
import { PLAIN_LOOK, type LetterCase, type Look } from './draw.ts';

/** Synthetic CAPTCHA styles, one file each. */
export const STYLES = ['railway', 'hard'] as const;
export type CaptchaStyle = (typeof STYLES)[number];

const RENDERERS: Record<CaptchaStyle, (rng: Rng, spec: LabelSpec, look: Look) => Captcha> = {
  railway: renderRailway,
  hard: renderHard,
};

export function isCaptchaStyle(s: string): s is CaptchaStyle {
  return (STYLES as readonly string[]).includes(s);
}

/** The labels file of a generated dataset, header `file,label`, written last. */
export const LABELS_FILE = 'labels.csv';

/**
 * Each image draws from its own Rng, seeded from (seed, index) alone: image i is the same
 * whatever the count, the start, or the order images are made in, so a dataset can be
 * generated in pieces. The style is not part of it: one seed gives the same labels in
 * every style.
 */
export function imageRng(seed: number, index: number): Rng {
  return new Rng(`captcha:${seed}:${index}`);
}

/** `000042.png`: the index, zero-padded to six digits (more digits past 999999). */
export function imageFileName(index: number, ext: string): string {
  return `${String(index).padStart(6, '0')}.${ext}`;
}

/** Renders one CAPTCHA of `style` from `rng` (advancing it). Synchronous and pure given rng's state. */
export function renderCaptcha(style: CaptchaStyle, rng: Rng, spec: LabelSpec = DEFAULT_LABEL_SPEC, look: Look = PLAIN_LOOK): Captcha {
  const render = RENDERERS[style];
  if (!render) throw new UserError(`unknown style '${style}', expected one of: ${STYLES.join(', ')}`);
  return render(rng, spec, look);
}

/**
 * Image `index`'s look under `letterCase`: mixed draws each letter's case from an Rng of its own.
 * `fonts` replaces the style's own fonts (undefined keeps them, and so the style's bytes).
 */
export function imageLook(letterCase: LetterCase, seed: number, index: number, size?: ImageSize, fonts?: readonly FontName[]): Look {
  const look: Look = letterCase === 'mixed' ? { letterCase, caseRng: new Rng(`case:${seed}:${index}`) } : { letterCase };
  return { ...look, ...(size ? { size } : {}), ...(fonts ? { fonts } : {}) };
}

/**
 * `--fonts`: `style` (the style's own fonts: undefined), `all`, or a comma-separated list of
 * font names. Throws a UserError naming what is known.
 */
export function parseFonts(text: string): FontName[] | undefined {
  const s = text.trim();
  if (s === 'style') return undefined;
  if (s === 'all') return [...FONT_NAMES];
  const names = s.split(',').map((n) => n.trim());
  const expected = `expected style, all, or a comma-separated list of: ${FONT_NAMES.join(', ')}`;
  for (const n of names) {
    if (!isFontName(n)) throw new UserError(`unknown font ${JSON.stringify(n)}; ${expected}`);
  }
  if (new Set(names).size !== names.length) throw new UserError(`font list ${JSON.stringify(s)} names a font twice; ${expected}`);
  return names as FontName[];
}

export interface GenerateProgress {
  done: number;
  total: number;
  seconds: number;
}

export interface GenerateOptions {
  style: CaptchaStyle;
  count: number;
  seed: number;
  /** Directory to write into; created if missing. */
  out: string;
  spec?: LabelSpec;
  /** Image size (default 60x200): drawn at 60x200, then scaled to it. */
  size?: ImageSize;
  /** How letters are drawn (default lower: as the labels have them); labels are never changed. */
  letterCase?: LetterCase;
  /** Fonts to draw in instead of the style's own (parseFonts); each glyph picks one. */
  fonts?: readonly FontName[];
  /** Index of the first image (default 0): files and Rngs are numbered from it. */
  start?: number;
  /** Replace a dataset already in `out` (its labels.csv is removed first). */
  force?: boolean;
  /** Stops between images; nothing half-written is left and labels.csv is not written. */
  signal?: AbortSignal;
  /** Called after every image. */
  onProgress?: (p: GenerateProgress) => void;
}

export interface GenerateResult {
  count: number;
  seconds: number;
}

const MAX_WRITES_IN_FLIGHT = 8;

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Writes images `start .. start+count-1` and then labels.csv into `out`. Every file is written
 * under a temporary name and renamed into place, labels.csv last, so an interrupted run never
 * leaves a partial file nor a labels.csv naming images that are not there.
 */
export async function generateDataset(opts: GenerateOptions): Promise<GenerateResult> {
  const { style, count, seed, out } = opts;
  const spec = opts.spec ?? DEFAULT_LABEL_SPEC;
  const start = opts.start ?? 0;
  if (!isCaptchaStyle(style)) throw new UserError(`unknown style '${style}', expected one of: ${STYLES.join(', ')}`);
  if (!Number.isSafeInteger(count) || count < 1) throw new UserError(`count must be a positive integer, got ${count}`);
  if (!Number.isSafeInteger(start) || start < 0) throw new UserError(`start must be a non-negative integer, got ${start}`);
  if (!Number.isSafeInteger(seed)) throw new UserError(`seed must be an integer, got ${seed}`);
  const problem = specProblem(spec) ?? (opts.size ? sizeProblem(opts.size) : null);
  if (problem) throw new UserError(problem);
  if (opts.fonts && (opts.fonts.length === 0 || !opts.fonts.every(isFontName))) {
    throw new UserError(`fonts must be a non-empty list of: ${FONT_NAMES.join(', ')}, got ${JSON.stringify(opts.fonts)}`);
  }

  if (existsSync(out) && !statSync(out).isDirectory()) throw new UserError(`output '${out}' exists and is not a directory`);
  const labelsPath = path.join(out, LABELS_FILE);
  if (existsSync(labelsPath)) {
    if (!opts.force) {
      throw new UserError(`'${out}' already holds a dataset (${LABELS_FILE}); choose another directory or pass --force to replace it`);
    }
    // Removed before any image is replaced, so an interrupted run cannot leave old labels over new images.
    rmSync(labelsPath);
  }
  mkdirSync(out, { recursive: true });

  const t0 = performance.now();
  const rows: string[] = ['file,label'];
  // Files are written by the thread pool while the next images render: a few writes in flight.
  const inFlight = new Set<Promise<void>>();
  const temps = new Set<string>();
  let writeError: unknown = null;
  const put = (name: string, data: Buffer | string): Promise<void> => {
    const tmp = path.join(out, `.${name}.${process.pid}.tmp`);
    temps.add(tmp);
    const p = writeFile(tmp, data)
      .then(() => rename(tmp, path.join(out, name)))
      .then(
        () => void temps.delete(tmp),
        (err) => void (writeError ??= err),
      )
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    return p;
  };
  try {
    for (let k = 0; k < count; k++) {
      if (inFlight.size >= MAX_WRITES_IN_FLIGHT) await Promise.race(inFlight);
      else if (k % 16 === 0) await yieldToLoop(); // lets signals and timers in between images
      if (writeError) throw writeError;
      opts.signal?.throwIfAborted();
      const index = start + k;
      const { label, image, ext } = renderCaptcha(style, imageRng(seed, index), spec, imageLook(opts.letterCase ?? 'lower', seed, index, opts.size, opts.fonts));
      const name = imageFileName(index, ext);
      void put(name, image);
      rows.push(`${name},${csvField(label)}`);
      opts.onProgress?.({ done: k + 1, total: count, seconds: (performance.now() - t0) / 1000 });
    }
    await Promise.all(inFlight);
    if (writeError) throw writeError;
    opts.signal?.throwIfAborted();
    // Last, once every image is in place.
    await put(LABELS_FILE, rows.join('\n') + '\n');
    if (writeError) throw writeError;
  } finally {
    await Promise.all(inFlight);
    for (const tmp of temps) rmSync(tmp, { force: true });
  }
  return { count, seconds: (performance.now() - t0) / 1000 };
}
