/**
 * A sweep's data shape: the images' size and what a label is (how many characters, from which
 * alphabet, in which case). The report's data is the default: 60x200 images, 6 characters of
 * `0-9a-z`. A sweep file declares another in `train: {image, label}`; each trial then carries
 * the values that differ from the default in its params (image_height, image_width,
 * label_length, label_charset, label_case), so the worker, `sweep show`, the report and an
 * exported reader read them from the trial itself, and trials of sweeps that declare no shape
 * keep their params and ids.
 *
 * Label case:
 *  - `lower` (the default): labels are read as they are, the charset as written.
 *  - `upper`: the charset's letters are capitals (`0-9a-z` means `0-9A-Z`); a label with a
 *    small letter is refused.
 *  - `fold`: a letter in either case is one class. The charset keeps the case it is written in
 *    (it may not hold both cases of a letter), a label's letters are turned to that case before
 *    they are checked and encoded, and readings print in it.
 */
import { DEFAULT_IMAGE_SIZE as DEFAULT_IMAGE } from './geometry.ts';

export const DEFAULT_CHARSET = '0123456789abcdefghijklmnopqrstuvwxyz';

export const LABEL_CASES = ['lower', 'upper', 'fold'] as const;
export type LabelCase = (typeof LABEL_CASES)[number];

export interface LabelSpec {
  /** Characters in class order; class i is charset[i]. */
  charset: string;
  /** Characters per CAPTCHA (the report's data: 6). */
  length: number;
  /** How labels' letter case is read (absent: `lower`, labels as they are). */
  case?: LabelCase;
}

export const DEFAULT_LABEL_SPEC: LabelSpec = { charset: DEFAULT_CHARSET, length: 6 };

/** The most characters a label may have (a 200-pixel-wide CAPTCHA holds no more). */
export const MAX_LABEL_LENGTH = 12;

/** Images of fewer pixels leave the model no feature map (three 2x2 max-pools). */
export const MIN_IMAGE_SIDE = 8;

/** Expands ranges such as `0-9a-z` into the characters they name. */
export function parseCharset(spec: string): string {
  let out = '';
  for (let i = 0; i < spec.length; i++) {
    if (i + 2 < spec.length && spec[i + 1] === '-') {
      const from = spec.charCodeAt(i);
      const to = spec.charCodeAt(i + 2);
      if (to < from) throw new Error(`charset range '${spec.slice(i, i + 3)}' runs backwards`);
      for (let c = from; c <= to; c++) out += String.fromCharCode(c);
      i += 2;
    } else {
      out += spec[i];
    }
  }
  if (new Set(out).size !== out.length) throw new Error(`charset '${spec}' repeats a character`);
  return out;
}

const hasCase = (ch: string) => ch.toUpperCase() !== ch.toLowerCase();

/**
 * The label spec a `label:` block declares: `charset` expanded and put in its case. Throws an
 * Error saying what is wrong (a range that runs backwards, a character twice, both cases of a
 * letter under `fold`).
 */
export function labelSpec(length: number, charsetSpec: string, letterCase: LabelCase = 'lower'): LabelSpec {
  let charset = parseCharset(charsetSpec);
  if (charset.length === 0) throw new Error('charset is empty');
  if (letterCase === 'upper') {
    charset = charset.toUpperCase();
    if (new Set(charset).size !== charset.length) throw new Error(`charset '${charsetSpec}' holds a letter in both cases; under case: upper they are one character`);
  }
  if (letterCase === 'fold') {
    const both = [...charset].find((ch) => hasCase(ch) && ch !== ch.toUpperCase() && charset.includes(ch.toUpperCase()));
    if (both) throw new Error(`charset '${charsetSpec}' holds both '${both}' and '${both.toUpperCase()}'; under case: fold they are one class, so give each letter once`);
  }
  return letterCase === 'lower' ? { charset, length } : { charset, length, case: letterCase };
}

/** The label as the spec reads it: under `fold`, letters turned to the charset's case; else as it is. */
export function readLabel(label: string, spec: LabelSpec): string {
  if (spec.case !== 'fold') return label;
  let out = '';
  for (const ch of label) {
    if (spec.charset.includes(ch) || !hasCase(ch)) out += ch;
    else if (spec.charset.includes(ch.toUpperCase())) out += ch.toUpperCase();
    else if (spec.charset.includes(ch.toLowerCase())) out += ch.toLowerCase();
    else out += ch;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The shape in a trial's params.

export interface DataShape {
  height: number;
  width: number;
  label: LabelSpec;
}

export const DEFAULT_SHAPE: DataShape = { ...DEFAULT_IMAGE, label: DEFAULT_LABEL_SPEC };

/** The names a trial's params carry its shape under, when it is not the default. */
export const SHAPE_PARAMS = ['image_height', 'image_width', 'label_length', 'label_charset', 'label_case'] as const;

/** The shape's params, each left out at its default (so a default-shape trial's params and id do not change). */
export function shapeParams(shape: DataShape): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  if (shape.height !== DEFAULT_IMAGE.height) out.image_height = shape.height;
  if (shape.width !== DEFAULT_IMAGE.width) out.image_width = shape.width;
  if (shape.label.length !== DEFAULT_LABEL_SPEC.length) out.label_length = shape.label.length;
  if (shape.label.charset !== DEFAULT_CHARSET) out.label_charset = shape.label.charset;
  if ((shape.label.case ?? 'lower') !== 'lower') out.label_case = shape.label.case!;
  return out;
}

/** The shape a trial's params carry (defaults for what they leave out). */
export function shapeFromParams(params: Record<string, unknown> | null | undefined): DataShape {
  const p = params ?? {};
  const num = (k: string, d: number) => (typeof p[k] === 'number' ? (p[k] as number) : d);
  const labelCase = (LABEL_CASES as readonly unknown[]).includes(p.label_case) ? (p.label_case as LabelCase) : 'lower';
  const label: LabelSpec = {
    charset: typeof p.label_charset === 'string' ? p.label_charset : DEFAULT_CHARSET,
    length: num('label_length', DEFAULT_LABEL_SPEC.length),
    ...(labelCase === 'lower' ? {} : { case: labelCase }),
  };
  return { height: num('image_height', DEFAULT_IMAGE.height), width: num('image_width', DEFAULT_IMAGE.width), label };
}

/** `50x160, 4 characters of 0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ (case upper)` */
export function describeShape(shape: DataShape): string {
  const c = shape.label.case && shape.label.case !== 'lower' ? ` (case ${shape.label.case})` : '';
  return `${shape.height}x${shape.width}, ${shape.label.length} characters of ${shape.label.charset}${c}`;
}
